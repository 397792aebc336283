//! Contract suite on SQLite (being written).
