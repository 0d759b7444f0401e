"""Decisions fitted on validation: thresholds, prior/cost decisions and calibration."""
