"""Dataset exports: the dictionary of datasets and variables (``dictionary``), their rows from
the live or the history tables (``datasets``), the writers per format, and the packaging of one
export into a zip with its manifest (``package``)."""
