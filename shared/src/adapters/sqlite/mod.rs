//! SQLite adapter (in progress).
