//! The contract suite on the embedded store: a fresh in-memory SQLite database per case.

contract_suite!(async {
    std::sync::Arc::new(portal_embedded::sqlite::SqliteStore::open_in_memory().unwrap())
});
