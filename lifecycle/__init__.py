"""The data's life cycle: erasure and export of one visitor's data, retention, backups."""
