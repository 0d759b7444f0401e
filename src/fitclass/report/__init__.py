"""Reports: one self-contained HTML page per run (plots inline as SVG, no network)."""
