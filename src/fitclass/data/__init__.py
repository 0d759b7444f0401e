"""Data: reading tables, checking them, splitting them, and the generated demo data."""
