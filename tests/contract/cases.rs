//! Contract cases. Add a case: write `pub async fn name(store: &dyn Store)` and list its
//! name in `contract_suite!` — every adapter then runs it.

use portal_core::domain::{DivisionId, DivisionInput, Email, TenantId};
use portal_core::ports::Store;

macro_rules! contract_suite {
    ($make:expr) => {
        contract_suite!(@cases $make; divisions_round_trip);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $make.await;
                $crate::cases::$case(&*store).await;
            }
        )*
    };
}

pub fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

pub async fn divisions_round_trip(store: &dyn Store) {
    let t = tenant("t1");
    let d = DivisionInput::new(
        DivisionId::parse("d1").unwrap(),
        "Oak Hills HOA".into(),
        Email::parse("board@oakhills.example").unwrap(),
    )
    .unwrap();
    store.put_division(&t, &d).await.unwrap();
    let got = store.list_divisions(&t).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].name, "Oak Hills HOA");
    assert!(store
        .list_divisions(&tenant("t2"))
        .await
        .unwrap()
        .is_empty());
}
