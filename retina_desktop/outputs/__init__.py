"""What leaves the app: the records and their one wording, reports, and batch CSV files."""
