"""Data files and what is checked in them: reading, streaming scans, the check framework, the data report and advice."""
