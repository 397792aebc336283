//! The contract suite on DynamoDB, against a moto server (one per test binary, a fresh table
//! per test), plus checks only this adapter needs: AWS batch limits, cursor forgery, and the
//! table definition agreeing with `template.yaml`.

use portal_aws::dynamodb::DynamoStore;
use portal_testkit::moto::{fresh_table, Exclusive, Moto};

async fn store() -> Exclusive<DynamoStore> {
    Exclusive::new(|| async {
        let client: aws_sdk_dynamodb::Client = Moto::shared().client();
        let table = fresh_table(&client).await;
        // moto does not isolate concurrent transactions (see `serialize_transactions`).
        DynamoStore::new(client, table).serialize_transactions()
    })
    .await
}

contract_suite!(store());

mod dynamodb_only {
    use base64::Engine as _;
    use portal_aws::aws_metrics::RequestCounter;
    use portal_aws::dynamodb::{table_definition, DynamoStore};
    use portal_core::domain::{
        Account, ContactId, DivisionId, DivisionInput, Email, Filters, Group, PortalStatus,
        TenantId,
    };
    use portal_core::ports::{
        AccountStore, ContactQuery, ContactStateStore, ContactStore, DivisionStore, ListQuery,
        StoreError,
    };
    use portal_testkit::builders::{AccountBuilder, ContactBuilder};
    use portal_testkit::moto::{fresh_table, Exclusive, Moto};
    use time::macros::datetime;

    fn t(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    fn d(s: &str) -> DivisionId {
        DivisionId::parse(s).unwrap()
    }

    async fn counted_store() -> (Exclusive<DynamoStore>, RequestCounter) {
        let counter = RequestCounter::new();
        let store = Exclusive::new(|| async {
            let client: aws_sdk_dynamodb::Client = Moto::shared().counted_client(&counter);
            let table = fresh_table(&client).await;
            DynamoStore::new(client, table)
        })
        .await;
        counter.reset();
        (store, counter)
    }

    async fn put_div(store: &DynamoStore, tenant: &TenantId, id: &str) {
        let input = DivisionInput::new(
            d(id),
            format!("Division {id}"),
            Email::parse("hoa@example.org").unwrap(),
        )
        .unwrap();
        store.put_division(tenant, &input).await.unwrap();
    }

    fn account(id: &str, division: &str, contacts: usize) -> Account {
        AccountBuilder::new(id)
            .division(division)
            .contacts((0..contacts).map(|i| {
                ContactBuilder::new(format!("{id}-c{i}"))
                    .name(format!("Contact {i}"))
                    .email(format!("{id}.{i}@example.com"))
                    .billing(i == 0)
            }))
            .build()
    }

    fn query(divisions: &[&str]) -> ContactQuery {
        ContactQuery {
            division_ids: divisions.iter().map(|x| d(x)).collect(),
            filters: Filters::default(),
            limit_to_uninvited: false,
            now: datetime!(2026-11-02 12:00:00 UTC),
        }
    }

    fn list(divisions: &[&str], cursor: Option<String>, limit: u32) -> ListQuery {
        ListQuery {
            contacts: query(divisions),
            group: Group::All,
            search: String::new(),
            cursor,
            limit,
        }
    }

    #[test]
    fn the_table_definition_agrees_with_the_template() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
        let text = std::fs::read_to_string(path).expect("template.yaml at the workspace root");
        // Tags such as `!Ref` parse as tagged values; the Table's key properties have none.
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("template.yaml parses");
        let table = &doc["Resources"]["Table"];
        assert_eq!(
            table["Type"].as_str(),
            Some("AWS::DynamoDB::Table"),
            "template.yaml must define the table as resource `Table`"
        );
        // Order is irrelevant in these two lists (not in key schemas: HASH comes first).
        let normalize = |name: &str, mut v: serde_json::Value| {
            let by = match name {
                "AttributeDefinitions" => "AttributeName",
                "GlobalSecondaryIndexes" => "IndexName",
                _ => return v,
            };
            if let Some(list) = v.as_array_mut() {
                list.sort_by_key(|e| e[by].as_str().unwrap_or_default().to_owned());
            }
            v
        };
        let expected = serde_json::to_value(table_definition()).unwrap();
        let props = &table["Properties"];
        for (name, want) in expected.as_object().unwrap() {
            let got = normalize(name, serde_json::to_value(&props[name.as_str()]).unwrap());
            assert_eq!(
                got,
                normalize(name, want.clone()),
                "Table.Properties.{name} differs from table_definition()"
            );
        }
        assert!(
            props["GlobalSecondaryIndexes"].is_null()
                || expected.get("GlobalSecondaryIndexes").is_some(),
            "template.yaml declares indexes the adapter does not know"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sync_larger_than_one_batch_is_split_into_batches_of_at_most_25() {
        let (store, counter) = counted_store().await;
        let tenant = t("t1");
        put_div(&store, &tenant, "d1").await;
        // 2 accounts x 60 contacts: 120 sync items + 120 locators + 2 accounts = 242 writes.
        let accounts = [account("a1", "d1", 60), account("a2", "d1", 60)];
        counter.reset();
        let report = store.upsert_accounts(&tenant, &accounts).await.unwrap();
        assert_eq!(report.contacts, 120);
        assert!(counter.get("BatchWriteItem") >= 242_u64.div_ceil(25));
        let counts = store
            .count_contacts(&tenant, &query(&["d1"]))
            .await
            .unwrap();
        assert_eq!(counts.total, 120);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_count_reads_each_of_the_sixteen_shards_once_for_a_small_division() {
        let (store, counter) = counted_store().await;
        let tenant = t("t1");
        put_div(&store, &tenant, "d1").await;
        store
            .upsert_accounts(&tenant, &[account("a1", "d1", 40)])
            .await
            .unwrap();
        counter.reset();
        let counts = store
            .count_contacts(&tenant, &query(&["d1"]))
            .await
            .unwrap();
        assert_eq!(counts.total, 40);
        // 16 shard partitions + the suppression list.
        assert_eq!(counter.get("Query"), 17);
        assert_eq!(counter.total(), 17);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cursor_from_another_tenant_only_pages_through_the_callers_own_contacts() {
        let (store, _) = counted_store().await;
        let (alice, bob) = (t("alice"), t("bob"));
        for tenant in [&alice, &bob] {
            put_div(&store, tenant, "d1").await;
        }
        store
            .upsert_accounts(&alice, &[account("a1", "d1", 30)])
            .await
            .unwrap();
        let page = store
            .list_contacts(&alice, &list(&["d1"], None, 5))
            .await
            .unwrap();
        let cursor = page.next_cursor.expect("alice has more contacts");
        let bobs = store
            .list_contacts(&bob, &list(&["d1"], Some(cursor), 5))
            .await
            .unwrap();
        assert!(bobs.items.is_empty());
        assert_eq!(bobs.next_cursor, None);

        // A hand-made cursor naming a key is not one of ours.
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r##"{"v":1,"d":"d1","s":0,"c":"x","pk":"T#alice#D#d1#S#00"}"##);
        let err = store
            .list_contacts(&bob, &list(&["d1"], Some(forged), 5))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidCursor(_)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_account_moving_division_takes_its_contacts_state_along() {
        let (store, _) = counted_store().await;
        let tenant = t("t1");
        for x in ["d1", "d2"] {
            put_div(&store, &tenant, x).await;
        }
        store
            .upsert_accounts(&tenant, &[account("a1", "d1", 3)])
            .await
            .unwrap();
        let c0 = ContactId::parse("a1-c0").unwrap();
        assert!(store
            .set_portal_status(&tenant, &c0, PortalStatus::Accepted)
            .await
            .unwrap());
        store
            .upsert_accounts(&tenant, &[account("a1", "d2", 3)])
            .await
            .unwrap();
        let got = store.get_contact(&tenant, &c0).await.unwrap().unwrap();
        assert_eq!(got.division_id, d("d2"));
        assert_eq!(got.portal_status, PortalStatus::Accepted);
        let old = store
            .count_contacts(&tenant, &query(&["d1"]))
            .await
            .unwrap();
        let new = store
            .count_contacts(&tenant, &query(&["d2"]))
            .await
            .unwrap();
        assert_eq!((old.total, new.total, new.accepted), (0, 3, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inviting_an_accepted_contact_records_the_time_but_keeps_it_accepted() {
        let (store, _) = counted_store().await;
        let tenant = t("t1");
        put_div(&store, &tenant, "d1").await;
        store
            .upsert_accounts(&tenant, &[account("a1", "d1", 2)])
            .await
            .unwrap();
        let (c0, c1) = (
            ContactId::parse("a1-c0").unwrap(),
            ContactId::parse("a1-c1").unwrap(),
        );
        let at = datetime!(2026-11-02 08:30:00 UTC);
        assert!(store
            .set_portal_status(&tenant, &c0, PortalStatus::Accepted)
            .await
            .unwrap());
        assert!(store.record_invited(&tenant, &c0, at).await.unwrap());
        assert!(store.record_invited(&tenant, &c1, at).await.unwrap());
        let got0 = store.get_contact(&tenant, &c0).await.unwrap().unwrap();
        let got1 = store.get_contact(&tenant, &c1).await.unwrap().unwrap();
        assert_eq!(
            (got0.portal_status, got0.last_invited_at),
            (PortalStatus::Accepted, Some(at))
        );
        assert_eq!(
            (got1.portal_status, got1.last_invited_at),
            (PortalStatus::Pending, Some(at))
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_500_row_page_of_a_large_shard_costs_one_query_and_resumes_exactly() {
        let (store, counter) = counted_store().await;
        let tenant = t("t1");
        put_div(&store, &tenant, "d1").await;
        let accounts: Vec<_> = (0..40)
            .map(|i| account(&format!("a{i}"), "d1", 25))
            .collect();
        store.upsert_accounts(&tenant, &accounts).await.unwrap();
        counter.reset();
        let first = store
            .list_contacts(&tenant, &list(&["d1"], None, 50))
            .await
            .unwrap();
        assert_eq!(first.items.len(), 50);
        // One shard holds ~62 contacts: one Query fills the page (the group `all` does not
        // need the suppression list).
        assert_eq!(counter.get("Query"), 1);
        let second = store
            .list_contacts(&tenant, &list(&["d1"], first.next_cursor, 500))
            .await
            .unwrap();
        let third = store
            .list_contacts(&tenant, &list(&["d1"], second.next_cursor, 500))
            .await
            .unwrap();
        assert_eq!((second.items.len(), third.items.len()), (500, 450));
        assert_eq!(third.next_cursor, None);
        let mut all: Vec<_> = [first.items, second.items, third.items]
            .concat()
            .into_iter()
            .map(|c| c.contact_id)
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 1000);
    }
}
