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
            max_examined: None,
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
    async fn a_search_over_empty_partitions_costs_at_most_its_budget_in_queries() {
        let (store, counter) = counted_store().await;
        let tenant = t("t1");
        let divisions: Vec<String> = (0..20).map(|i| format!("d{i:02}")).collect();
        for (i, id) in divisions.iter().enumerate() {
            put_div(&store, &tenant, id).await;
            // Two contacts a division: at least 14 of its 16 shard partitions are empty.
            store
                .upsert_accounts(&tenant, &[account(&format!("a{i}"), id, 2)])
                .await
                .unwrap();
        }
        let names: Vec<&str> = divisions.iter().map(String::as_str).collect();
        let search = |cursor| ListQuery {
            search: "nobody".into(),
            max_examined: Some(25),
            ..list(&names, cursor, 50)
        };
        counter.reset();
        let page = store.list_contacts(&tenant, &search(None)).await.unwrap();
        assert!(page.items.is_empty());
        assert!(page.next_cursor.is_some());
        // Each Query either examined a contact or found its partition empty: 25 at most.
        assert!(
            counter.get("Query") <= 25,
            "{} Queries",
            counter.get("Query")
        );
        assert_eq!(counter.total(), counter.get("Query"));
        // Without a budget the same search reads all 320 partitions in one page.
        counter.reset();
        let unbounded = ListQuery {
            max_examined: None,
            ..search(None)
        };
        let page = store.list_contacts(&tenant, &unbounded).await.unwrap();
        assert_eq!((page.items.len(), page.next_cursor), (0, None));
        assert_eq!(counter.get("Query"), 320);
        // The bounded pages end, having examined everything once.
        let (mut cursor, mut pages) = (None, 0);
        counter.reset();
        loop {
            let page = store.list_contacts(&tenant, &search(cursor)).await.unwrap();
            assert!(page.items.is_empty());
            pages += 1;
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert!(
            (320usize.div_ceil(25)..=20).contains(&pages),
            "{pages} pages"
        );
        assert!(counter.get("Query") <= 25 * pages as u64);
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

/// DynamoDB-only checks of registration: what each operation costs in requests, that a lost
/// race on an address costs one more transaction and no read, that items meant to expire
/// carry `ttl`, and that an account item from before portal keys gets one on first read.
mod dynamodb_registration {
    use aws_sdk_dynamodb::types::AttributeValue;
    use portal_aws::aws_metrics::RequestCounter;
    use portal_aws::dynamodb::DynamoStore;
    use portal_core::domain::{
        AccountId, ContactId, DivisionId, DivisionInput, Email, Invitation, InvitationState,
        PortalKey, RegistrationToken, TenantId, Trigger,
    };
    use portal_core::ports::{
        AccountStore, CampaignStore, Claim, ConfirmOutcome, ContactStore, DivisionStore,
        NewRegistration, RegisterOutcome, RegistrationStore, Via,
    };
    use portal_testkit::builders::{AccountBuilder, CampaignBuilder, ContactBuilder};
    use portal_testkit::moto::{fresh_table, Exclusive, Moto};
    use time::macros::datetime;
    use time::{Duration, OffsetDateTime};

    const NOW: OffsetDateTime = datetime!(2026-11-02 12:00:00 UTC);

    type Item = std::collections::HashMap<String, AttributeValue>;

    struct Fixture {
        store: DynamoStore,
        raw: aws_sdk_dynamodb::Client,
        table: String,
    }

    async fn fixture() -> (Exclusive<Fixture>, RequestCounter) {
        let counter = RequestCounter::new();
        let fx = Exclusive::new(|| async {
            let raw: aws_sdk_dynamodb::Client = Moto::shared().client();
            let table = fresh_table(&raw).await;
            let counted: aws_sdk_dynamodb::Client = Moto::shared().counted_client(&counter);
            Fixture {
                // moto does not isolate concurrent transactions (see `serialize_transactions`).
                store: DynamoStore::new(counted, table.clone()).serialize_transactions(),
                raw,
                table,
            }
        })
        .await;
        counter.reset();
        (fx, counter)
    }

    fn t() -> TenantId {
        TenantId::parse("t1").unwrap()
    }

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    /// Division `d1`, account `a1` (number `N-1`) with `n` contacts `c{i}`, each invited by
    /// one individual campaign; answers the campaign.
    async fn seed(store: &DynamoStore, n: usize) -> portal_core::domain::CampaignId {
        let d = DivisionInput::new(
            DivisionId::parse("d1").unwrap(),
            "Division 1".into(),
            email("hoa@example.org"),
        )
        .unwrap();
        store.put_division(&t(), &d).await.unwrap();
        let account = AccountBuilder::new("a1")
            .number("N-1")
            .contacts((0..n).map(|i| {
                ContactBuilder::new(format!("c{i}"))
                    .name("X")
                    .email(format!("c{i}@example.com"))
            }))
            .build();
        store.upsert_accounts(&t(), &[account]).await.unwrap();
        let c = CampaignBuilder::new(NOW)
            .trigger(Trigger::Individual)
            .build();
        store.create_campaign(&t(), &c, None, NOW).await.unwrap();
        let claims: Vec<Claim> = (0..n)
            .map(|i| {
                let id = ContactId::parse(format!("c{i}")).unwrap();
                Claim {
                    contact_id: id.clone(),
                    division_id: None,
                    invitation: Invitation {
                        campaign_id: c.campaign_id.clone(),
                        contact_id: id,
                        email: email(&format!("c{i}@example.com")),
                        contact_name: "X".into(),
                        account_number: "N-1".into(),
                        registration_token_hash: RegistrationToken::generate().hash(),
                        expires_at: NOW + Duration::days(14),
                        state: InvitationState::new(),
                        created_at: NOW,
                    },
                }
            })
            .collect();
        store
            .claim_contacts(&t(), &c.campaign_id, &claims, NOW)
            .await
            .unwrap();
        c.campaign_id
    }

    fn by_invitation(
        mail: &str,
        contact: usize,
        campaign: &portal_core::domain::CampaignId,
    ) -> NewRegistration {
        NewRegistration {
            email: email(mail),
            name: "Pat".into(),
            contact_id: Some(ContactId::parse(format!("c{contact}")).unwrap()),
            account_id: AccountId::parse("a1").unwrap(),
            via: Via::Invitation {
                campaign_id: campaign.clone(),
            },
        }
    }

    async fn raw_item(fx: &Fixture, pk: &str, sk: &str) -> Option<Item> {
        fx.raw
            .get_item()
            .table_name(&fx.table)
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn registration_operations_cost_what_the_module_docs_say() {
        let (fx, counter) = fixture().await;
        let store = &fx.store;
        let campaign = seed(store, 3).await;

        counter.reset();
        let new = store
            .register(&t(), &by_invitation("pat@example.com", 0, &campaign), NOW)
            .await
            .unwrap();
        assert!(matches!(new, RegisterOutcome::NewLogin(_)));
        // The locator and login, the address index (the address's other contacts), the write.
        assert_eq!(
            (
                counter.get("BatchGetItem"),
                counter.get("Query"),
                counter.get("TransactWriteItems")
            ),
            (1, 1, 1)
        );
        assert_eq!(counter.total(), 3);

        counter.reset();
        let existing = store
            .register(&t(), &by_invitation("Pat@example.com", 1, &campaign), NOW)
            .await
            .unwrap();
        assert!(matches!(existing, RegisterOutcome::ExistingLogin(_)));
        assert_eq!(counter.total(), 3);

        counter.reset();
        let used = store
            .register(&t(), &by_invitation("x@example.com", 0, &campaign), NOW)
            .await
            .unwrap();
        assert_eq!(used, RegisterOutcome::TokenUsed);
        // The invitation's `ALL_OLD` copy tells a used token from a missing one: no read.
        assert_eq!(counter.total(), 3);

        let hash = RegistrationToken::generate().hash();
        let expires = NOW + Duration::days(1);
        let by_key = NewRegistration {
            email: email("kim@example.com"),
            name: "Kim".into(),
            contact_id: Some(ContactId::parse("c2").unwrap()),
            account_id: AccountId::parse("a1").unwrap(),
            via: Via::PortalKey {
                confirm_token_hash: hash,
                confirm_expires_at: expires,
            },
        };
        counter.reset();
        let outcome = store.register(&t(), &by_key, NOW).await.unwrap();
        assert!(matches!(outcome, RegisterOutcome::NewLogin(_)));
        assert_eq!(counter.get("TransactWriteItems"), 1);
        assert_eq!(counter.total(), 1);
        counter.reset();
        let again = store.register(&t(), &by_key, NOW).await.unwrap();
        assert!(matches!(again, RegisterOutcome::ExistingLogin(_)));
        assert_eq!(counter.total(), 1, "the login's ALL_OLD copy answers");

        counter.reset();
        let confirmed = store.confirm_login(&t(), &hash, NOW).await.unwrap();
        assert!(matches!(confirmed, ConfirmOutcome::Confirmed(_)));
        assert_eq!(
            (
                counter.get("GetItem"),
                counter.get("BatchGetItem"),
                counter.get("TransactWriteItems")
            ),
            (2, 1, 1)
        );
        assert_eq!(counter.total(), 4);

        counter.reset();
        assert!(store
            .find_account_by_number(&t(), "N-1")
            .await
            .unwrap()
            .is_some());
        assert_eq!(
            (
                counter.get("Query"),
                counter.get("GetItem"),
                counter.get("BatchGetItem")
            ),
            (1, 1, 1)
        );
        counter.reset();
        let k = PortalKey::generate();
        assert!(store
            .set_portal_key(&t(), &AccountId::parse("a1").unwrap(), &k)
            .await
            .unwrap());
        // The account item, then one copy per contact.
        assert_eq!(counter.get("UpdateItem"), 4);
        assert_eq!(counter.total(), 4);
    }

    /// A contact sync item with an address carries the address index's keys (normalized
    /// address, contact id); one without carries none.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn contact_sync_items_are_indexed_by_their_normalized_address() {
        let (fx, _) = fixture().await;
        let store = &fx.store;
        seed(store, 1).await;
        let account = AccountBuilder::new("a2")
            .contact(
                ContactBuilder::new("x1")
                    .name("X")
                    .email("Mixed.Case@Example.COM"),
            )
            .contact(ContactBuilder::new("x2").name("Y"))
            .build();
        store.upsert_accounts(&t(), &[account]).await.unwrap();
        let shard = |c: &str| {
            let pk = (0..16)
                .map(|s| format!("T#t1#D#d1#S#{s:02}"))
                .collect::<Vec<_>>();
            (pk, format!("C#{c}"))
        };
        let mut found = Vec::new();
        for c in ["x1", "x2"] {
            let (pks, sk) = shard(c);
            for pk in pks {
                if let Some(item) = raw_item(&fx, &pk, &sk).await {
                    found.push((c, item.get("gsi1pk").cloned(), item.get("gsi1sk").cloned()));
                }
            }
        }
        assert_eq!(
            found,
            vec![
                (
                    "x1",
                    Some(AttributeValue::S(
                        "T#t1#EMAIL#mixed.case@example.com".into()
                    )),
                    Some(AttributeValue::S("x1".into()))
                ),
                ("x2", None, None),
            ]
        );
    }

    /// 60 other contacts share the registration's address: 48 are accepted in its own
    /// transaction, the other 12 in one follow-up transaction with the login's update.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_address_past_one_transaction_costs_one_more_transaction_per_49_contacts() {
        let (fx, counter) = fixture().await;
        let store = &fx.store;
        let campaign = seed(store, 1).await;
        let account = AccountBuilder::new("a2")
            .contacts((0..60).map(|i| {
                ContactBuilder::new(format!("s{i:02}"))
                    .name("S")
                    .email(if i % 2 == 0 {
                        "shared@example.com"
                    } else {
                        "SHARED@example.com"
                    })
            }))
            .build();
        store.upsert_accounts(&t(), &[account]).await.unwrap();
        counter.reset();
        let outcome = store
            .register(
                &t(),
                &by_invitation("Shared@Example.com", 0, &campaign),
                NOW,
            )
            .await
            .unwrap();
        let RegisterOutcome::NewLogin(login) = outcome else {
            panic!("expected a new login, got {outcome:?}");
        };
        assert_eq!(login.contact_ids.len(), 61);
        assert_eq!(
            (
                counter.get("BatchGetItem"),
                counter.get("Query"),
                counter.get("TransactWriteItems")
            ),
            (1, 1, 2)
        );
        assert_eq!(counter.total(), 4);
        let stored = store
            .get_login(&t(), &email("shared@example.com"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.contact_ids, login.contact_ids);
        assert_eq!(
            stored.account_ids,
            vec![
                AccountId::parse("a1").unwrap(),
                AccountId::parse("a2").unwrap()
            ]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_race_on_an_address_costs_one_more_transaction_per_loser() {
        let (fx, counter) = fixture().await;
        let store = &fx.store;
        let n = 10;
        let campaign = seed(store, n).await;
        counter.reset();
        let registrations: Vec<NewRegistration> = (0..n)
            .map(|i| by_invitation("same@example.com", i, &campaign))
            .collect();
        let mut tasks = Vec::new();
        for r in registrations {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.register(&t(), &r, NOW).await.unwrap()
            }));
        }
        let mut new = 0;
        for task in tasks {
            if matches!(task.await.unwrap(), RegisterOutcome::NewLogin(_)) {
                new += 1;
            }
        }
        assert_eq!(new, 1);
        assert_eq!(counter.get("BatchGetItem"), n as u64);
        assert!(
            counter.get("TransactWriteItems") < 2 * n as u64,
            "one retry per loser at most"
        );
        assert_eq!(
            counter.get("GetItem"),
            0,
            "the loser's ALL_OLD copy is the login"
        );
        let login = store
            .get_login(&t(), &email("same@example.com"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(login.contact_ids.len(), n);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn confirmation_links_and_rate_limit_counters_carry_a_ttl() {
        let (fx, _) = fixture().await;
        let store = &fx.store;
        seed(store, 1).await;
        let hash = RegistrationToken::generate().hash();
        let expires = NOW + Duration::days(1);
        store
            .register(
                &t(),
                &NewRegistration {
                    email: email("kim@example.com"),
                    name: "Kim".into(),
                    contact_id: None,
                    account_id: AccountId::parse("a1").unwrap(),
                    via: Via::PortalKey {
                        confirm_token_hash: hash,
                        confirm_expires_at: expires,
                    },
                },
                NOW,
            )
            .await
            .unwrap();
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        let conf = raw_item(&fx, &format!("T#t1#CONF#{hex}"), "CONF")
            .await
            .unwrap();
        let ttl = |item: &Item| match item.get("ttl") {
            Some(AttributeValue::N(n)) => n.parse::<i64>().unwrap(),
            other => panic!("ttl is {other:?}"),
        };
        let conf_ttl = ttl(&conf);
        assert!(
            conf_ttl > expires.unix_timestamp()
                && conf_ttl <= (expires + Duration::days(7)).unix_timestamp(),
            "kept a few days after expiry"
        );

        let window_end = NOW + Duration::minutes(15);
        store
            .hit_rate_limit(&t(), "ip:198.51.100.7", NOW, window_end)
            .await
            .unwrap();
        let counters = fx
            .raw
            .scan()
            .table_name(&fx.table)
            .filter_expression("begins_with(pk, :p)")
            .expression_attribute_values(":p", AttributeValue::S("T#t1#RL#".into()))
            .send()
            .await
            .unwrap();
        assert_eq!(counters.items().len(), 1);
        let counter = &counters.items()[0];
        assert_eq!(ttl(counter), window_end.unix_timestamp());
        assert!(
            !format!("{counter:?}").contains("198.51.100.7"),
            "the key is stored hashed"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_account_stored_before_portal_keys_gets_one_on_first_read() {
        let (fx, _) = fixture().await;
        let store = &fx.store;
        seed(store, 2).await;
        // As an older release wrote them: no key on the account or its contacts.
        for (pk, sk) in [
            ("T#t1#ACC#a1".to_owned(), "A".to_owned()),
            (shard_pk("c0"), "C#c0".to_owned()),
            (shard_pk("c1"), "C#c1".to_owned()),
        ] {
            fx.raw
                .update_item()
                .table_name(&fx.table)
                .key("pk", AttributeValue::S(pk))
                .key("sk", AttributeValue::S(sk))
                .update_expression("REMOVE pkey")
                .send()
                .await
                .unwrap();
        }
        let c0 = ContactId::parse("c0").unwrap();
        assert_eq!(
            store
                .get_contact(&t(), &c0)
                .await
                .unwrap()
                .unwrap()
                .portal_key,
            None
        );
        let a1 = AccountId::parse("a1").unwrap();
        let key = store.get_portal_key(&t(), &a1).await.unwrap().unwrap();
        assert_eq!(
            store.get_portal_key(&t(), &a1).await.unwrap(),
            Some(key.clone())
        );
        assert_eq!(
            store
                .get_contact(&t(), &c0)
                .await
                .unwrap()
                .unwrap()
                .portal_key,
            Some(key.clone())
        );
        // And a sync keeps it.
        let account = AccountBuilder::new("a1")
            .number("N-1")
            .contacts((0..2).map(|i| {
                ContactBuilder::new(format!("c{i}"))
                    .name("X")
                    .email(format!("c{i}@example.com"))
            }))
            .build();
        store.upsert_accounts(&t(), &[account]).await.unwrap();
        assert_eq!(store.get_portal_key(&t(), &a1).await.unwrap(), Some(key));
    }

    /// The partition of a contact's sync item in `d1` (the adapter's shard hash, FNV-1a).
    fn shard_pk(contact: &str) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in contact.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("T#t1#D#d1#S#{:02}", h % 16)
    }
}

/// DynamoDB-only checks of recurring invitations: what each operation costs in requests, the
/// items and index keys the module docs describe, a division written before
/// `first_synced_at` was kept, and run cursors bound to their setting.
mod dynamodb_recurring {
    use aws_sdk_dynamodb::types::AttributeValue;
    use portal_aws::aws_metrics::RequestCounter;
    use portal_aws::dynamodb::DynamoStore;
    use portal_core::domain::{
        ContactId, DivisionId, DivisionInput, Email, Filters, Invitation, InvitationState,
        RecurringId, RecurringSetting, RegistrationToken, ReminderRule, Scope, TemplateId,
        TenantId, TimeZoneName, Trigger,
    };
    use portal_core::ports::{
        AccountStore, CampaignStore, Claim, ContactStore, DivisionStore, RecurringStore, RunRecord,
        StartRun, StoreError,
    };
    use portal_testkit::builders::{AccountBuilder, CampaignBuilder, ContactBuilder};
    use portal_testkit::moto::{fresh_table, Exclusive, Moto};
    use time::macros::datetime;
    use time::{Duration, OffsetDateTime};

    const NOW: OffsetDateTime = datetime!(2026-11-02 12:00:00 UTC);

    type Item = std::collections::HashMap<String, AttributeValue>;

    struct Fixture {
        store: DynamoStore,
        raw: aws_sdk_dynamodb::Client,
        table: String,
    }

    async fn fixture() -> (Exclusive<Fixture>, RequestCounter) {
        let counter = RequestCounter::new();
        let fx = Exclusive::new(|| async {
            let raw: aws_sdk_dynamodb::Client = Moto::shared().client();
            let table = fresh_table(&raw).await;
            let counted: aws_sdk_dynamodb::Client = Moto::shared().counted_client(&counter);
            Fixture {
                store: DynamoStore::new(counted, table.clone()).serialize_transactions(),
                raw,
                table,
            }
        })
        .await;
        counter.reset();
        (fx, counter)
    }

    fn t() -> TenantId {
        TenantId::parse("t1").unwrap()
    }

    fn rid(s: &str) -> RecurringId {
        RecurringId::parse(s).unwrap()
    }

    fn email(s: &str) -> Email {
        Email::parse(s).unwrap()
    }

    fn setting(id: &str, enabled: bool) -> RecurringSetting {
        RecurringSetting {
            setting_id: rid(id),
            enabled,
            scope: Scope::Divisions(vec![DivisionId::parse("d1").unwrap()]),
            filters: Filters::default(),
            template_id: TemplateId::parse("welcome").unwrap(),
            email_from: None,
            rule: ReminderRule {
                cadence_days: 7,
                max_invitations_per_contact: 3,
            },
            hour_of_day: 9,
            time_zone: TimeZoneName::parse("America/Chicago").unwrap(),
            created_at: NOW,
            updated_at: NOW,
        }
    }

    fn division(name: &str) -> DivisionInput {
        DivisionInput::new(
            DivisionId::parse("d1").unwrap(),
            name.into(),
            email("hoa@example.org"),
        )
        .unwrap()
        .synced_at(NOW)
    }

    async fn raw_item(fx: &Fixture, pk: &str, sk: &str) -> Option<Item> {
        fx.raw
            .get_item()
            .table_name(&fx.table)
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    }

    /// (requests of `operation`, all requests) since the last reset; resets.
    fn took(counter: &RequestCounter, operation: &str) -> (u64, u64) {
        let got = (counter.get(operation), counter.total());
        counter.reset();
        got
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn recurring_operations_cost_what_the_module_docs_say() {
        let (fx, counter) = fixture().await;
        let store = &fx.store;
        let tenant = t();

        store
            .put_division(&tenant, &division("North"))
            .await
            .unwrap();
        // The known-division update fails its condition, the creation (with `fv`) succeeds.
        assert_eq!(took(&counter, "UpdateItem"), (2, 2), "a new division");
        store
            .put_division(&tenant, &division("North 2"))
            .await
            .unwrap();
        assert_eq!(took(&counter, "UpdateItem"), (1, 1), "a known division");

        store
            .put_setting(&tenant, &setting("weekly", true))
            .await
            .unwrap();
        assert_eq!(took(&counter, "PutItem"), (1, 1));
        store.get_setting(&tenant, &rid("weekly")).await.unwrap();
        assert_eq!(took(&counter, "GetItem"), (1, 1));
        store.list_settings(&tenant).await.unwrap();
        assert_eq!(took(&counter, "Query"), (1, 1));
        assert_eq!(store.enabled_settings().await.unwrap().len(), 1);
        assert_eq!(took(&counter, "Query"), (1, 1));

        assert_eq!(
            store
                .start_run(&tenant, &rid("weekly"), "2026-11-02", NOW)
                .await
                .unwrap(),
            StartRun::Started
        );
        assert_eq!(took(&counter, "PutItem"), (1, 1));
        // The failed condition hands back the day's record: no read.
        assert!(matches!(
            store
                .start_run(&tenant, &rid("weekly"), "2026-11-02", NOW)
                .await
                .unwrap(),
            StartRun::Already(_)
        ));
        assert_eq!(took(&counter, "PutItem"), (1, 1));
        let done = RunRecord {
            setting_id: rid("weekly"),
            local_date: "2026-11-02".into(),
            started_at: NOW,
            campaign_id: None,
            finished: true,
        };
        store.finish_run(&tenant, &done).await.unwrap();
        assert_eq!(took(&counter, "UpdateItem"), (1, 1));

        for day in 3..=9 {
            store
                .start_run(&tenant, &rid("weekly"), &format!("2026-11-0{day}"), NOW)
                .await
                .unwrap();
        }
        counter.reset();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let page = store
                .list_runs(&tenant, &rid("weekly"), cursor.as_deref(), 3)
                .await
                .unwrap();
            pages += 1;
            assert_eq!(took(&counter, "Query"), (1, 1), "one Query a page");
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(pages, 3, "8 runs in pages of 3");

        assert!(store.delete_setting(&tenant, &rid("weekly")).await.unwrap());
        assert_eq!(took(&counter, "DeleteItem"), (1, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn settings_runs_and_counts_are_stored_as_the_module_docs_say() {
        let (fx, _) = fixture().await;
        let store = &fx.store;
        let tenant = t();
        store
            .put_setting(&tenant, &setting("on", true))
            .await
            .unwrap();
        store
            .put_setting(&tenant, &setting("off", true))
            .await
            .unwrap();
        store
            .put_setting(&tenant, &setting("off", false))
            .await
            .unwrap();

        let on = raw_item(&fx, "T#t1", "REC#on").await.unwrap();
        assert_eq!(text(&on, "gsi1pk"), Some("REC#ENABLED"));
        assert_eq!(text(&on, "gsi1sk"), Some("T#t1#on"));
        assert_eq!(text(&on, "tz"), Some("America/Chicago"), "the zone's name");
        let off = raw_item(&fx, "T#t1", "REC#off").await.unwrap();
        assert_eq!(
            text(&off, "gsi1pk"),
            None,
            "disabling drops it from the index"
        );
        assert_eq!(text(&off, "gsi1sk"), None);

        store
            .start_run(&tenant, &rid("on"), "2026-11-02", NOW)
            .await
            .unwrap();
        let run = raw_item(&fx, "T#t1#RUN#on", "2026-11-02").await.unwrap();
        assert_eq!(run.get("done"), Some(&AttributeValue::Bool(false)));

        // The claim counts on the contact's state item.
        store
            .put_division(&tenant, &division("North"))
            .await
            .unwrap();
        let account = AccountBuilder::new("a1")
            .contacts([ContactBuilder::new("c0").email("c0@example.com")])
            .build();
        store.upsert_accounts(&tenant, &[account]).await.unwrap();
        let c = CampaignBuilder::new(NOW)
            .trigger(Trigger::Individual)
            .build();
        store.create_campaign(&tenant, &c, None, NOW).await.unwrap();
        let id = ContactId::parse("c0").unwrap();
        let claim = Claim {
            contact_id: id.clone(),
            division_id: None,
            invitation: Invitation {
                campaign_id: c.campaign_id.clone(),
                contact_id: id.clone(),
                email: email("c0@example.com"),
                contact_name: "X".into(),
                account_number: "N-1".into(),
                registration_token_hash: RegistrationToken::generate().hash(),
                expires_at: NOW + Duration::days(14),
                state: InvitationState::new(),
                created_at: NOW,
            },
        };
        store
            .claim_contacts(&tenant, &c.campaign_id, &[claim], NOW)
            .await
            .unwrap();
        let contact = store.get_contact(&tenant, &id).await.unwrap().unwrap();
        assert_eq!(contact.invitations_sent, 1);
        let state = raw_item(&fx, &super::shard_pk_of("c0"), "C#c0#ST")
            .await
            .unwrap();
        assert_eq!(state.get("n_inv"), Some(&AttributeValue::N("1".into())));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_division_stored_before_first_synced_at_was_kept_stays_unknown() {
        let (fx, counter) = fixture().await;
        let store = &fx.store;
        let tenant = t();
        // As an older release wrote it.
        fx.raw
            .put_item()
            .table_name(&fx.table)
            .item("pk", AttributeValue::S("T#t1".into()))
            .item("sk", AttributeValue::S("DIV#d1".into()))
            .item("name", AttributeValue::S("Old".into()))
            .item("email_from", AttributeValue::S("old@example.org".into()))
            .send()
            .await
            .unwrap();
        counter.reset();
        let stored = store
            .put_division(&tenant, &division("Renamed"))
            .await
            .unwrap();
        assert_eq!(stored.name, "Renamed");
        assert_eq!(stored.email_from, email("hoa@example.org"));
        assert_eq!(
            stored.first_synced_at, None,
            "not first synced now: it would look new to a new_divisions_only setting"
        );
        // Neither a known division nor a new one: the third form updates it.
        assert_eq!(took(&counter, "UpdateItem"), (3, 3));
        let again = store
            .put_division(&tenant, &division("Again"))
            .await
            .unwrap();
        assert_eq!(
            (again.name.as_str(), again.first_synced_at),
            ("Again", None)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_cursor_works_only_for_its_own_setting() {
        let (fx, _) = fixture().await;
        let store = &fx.store;
        let tenant = t();
        for day in ["2026-11-01", "2026-11-02"] {
            for s in ["weekly", "daily"] {
                store.start_run(&tenant, &rid(s), day, NOW).await.unwrap();
            }
        }
        let page = store
            .list_runs(&tenant, &rid("weekly"), None, 1)
            .await
            .unwrap();
        let cursor = page.next_cursor.expect("two runs, pages of one");
        let next = store
            .list_runs(&tenant, &rid("weekly"), Some(&cursor), 1)
            .await
            .unwrap();
        assert_eq!(next.items[0].local_date, "2026-11-01");
        assert_eq!(next.next_cursor, None);
        assert!(matches!(
            store
                .list_runs(&tenant, &rid("daily"), Some(&cursor), 1)
                .await,
            Err(StoreError::InvalidCursor(_))
        ));
    }
}

/// The partition of a contact's sync and state items in `d1` of tenant `t1` (the adapter's
/// shard hash, FNV-1a).
fn shard_pk_of(contact: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in contact.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("T#t1#D#d1#S#{:02}", h % 16)
}

/// DynamoDB-only checks of the filter-value summaries (`filter_values` in the adapter): what
/// reading and keeping them costs, how the items look, that a division from before them is
/// read from its contacts, and that a summary shard outgrowing the item limit stops being
/// kept without failing the sync.
mod dynamodb_filter_values {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;
    use portal_aws::aws_metrics::RequestCounter;
    use portal_aws::dynamodb::DynamoStore;
    use portal_core::domain::{
        Account, AccountId, DivisionId, DivisionInput, Email, FilterField, FilterValues, TenantId,
    };
    use portal_core::ports::{AccountStore, ContactStore, DivisionStore};
    use portal_testkit::builders::{AccountBuilder, ContactBuilder};
    use portal_testkit::moto::{fresh_table, Exclusive, Moto};

    type Item = HashMap<String, AttributeValue>;

    struct Fixture {
        store: DynamoStore,
        raw: aws_sdk_dynamodb::Client,
        table: String,
    }

    async fn fixture() -> (Exclusive<Fixture>, RequestCounter) {
        let counter = RequestCounter::new();
        let fx = Exclusive::new(|| async {
            let raw: aws_sdk_dynamodb::Client = Moto::shared().client();
            let table = fresh_table(&raw).await;
            let counted: aws_sdk_dynamodb::Client = Moto::shared().counted_client(&counter);
            Fixture {
                // moto does not isolate concurrent transactions (see `serialize_transactions`).
                store: DynamoStore::new(counted, table.clone()).serialize_transactions(),
                raw,
                table,
            }
        })
        .await;
        counter.reset();
        (fx, counter)
    }

    fn t() -> TenantId {
        TenantId::parse("t1").unwrap()
    }

    fn d1() -> DivisionId {
        DivisionId::parse("d1").unwrap()
    }

    fn division() -> DivisionInput {
        DivisionInput::new(
            d1(),
            "Division 1".into(),
            Email::parse("hoa@example.org").unwrap(),
        )
        .unwrap()
    }

    fn account(i: usize, class: &str, contacts: usize) -> Account {
        AccountBuilder::new(format!("a{i}"))
            .class(class)
            .bill_group(format!("G{}", i % 3))
            .contacts((0..contacts).map(|k| {
                ContactBuilder::new(format!("a{i}-c{k}")).email(format!("a{i}.{k}@example.com"))
            }))
            .build()
    }

    async fn raw_put(fx: &Fixture, item: Item) {
        fx.raw
            .put_item()
            .table_name(&fx.table)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }

    async fn raw_get(fx: &Fixture, pk: &str, sk: &str) -> Option<Item> {
        fx.raw
            .get_item()
            .table_name(&fx.table)
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .send()
            .await
            .unwrap()
            .item
    }

    /// Every summary shard of `d1` in `t1`, as stored.
    async fn summary_items(fx: &Fixture) -> Vec<Item> {
        fx.raw
            .query()
            .table_name(&fx.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :d)")
            .expression_attribute_values(":pk", AttributeValue::S("T#t1#FV".into()))
            .expression_attribute_values(":d", AttributeValue::S("d1#".into()))
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default()
    }

    fn classes(v: &FilterValues) -> Vec<(String, u64)> {
        v.values(FilterField::AccountClass)
            .map(|(s, n)| (s.to_owned(), n))
            .collect()
    }

    /// (requests of `operation`, all requests) since the last reset; resets.
    fn took(counter: &RequestCounter, operation: &str) -> (u64, u64) {
        let got = (counter.get(operation), counter.total());
        counter.reset();
        got
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_divisions_values_cost_one_query_and_are_kept_by_sync_transactions() {
        let (fx, counter) = fixture().await;
        let store = &fx.store;
        store.put_division(&t(), &division()).await.unwrap();
        let div = raw_get(&fx, "T#t1", "DIV#d1").await.unwrap();
        assert_eq!(div.get("fv"), Some(&AttributeValue::S("kept".into())));

        // 150 accounts of 2 contacts over 2 classes and 3 bill groups. (Kept small: moto
        // copies the whole table for each transaction.)
        let accounts: Vec<Account> = (0..150)
            .map(|i| account(i, if i % 2 == 0 { "Even" } else { "Odd" }, 2))
            .collect();
        counter.reset();
        store.upsert_accounts(&t(), &accounts).await.unwrap();
        assert_eq!(
            counter.get("TransactWriteItems"),
            2,
            "99 accounts and one summary ADD a transaction"
        );
        let account_item = raw_get(&fx, "T#t1#ACC#a1", "A").await.unwrap();
        assert_eq!(
            account_item.get("ver"),
            Some(&AttributeValue::N("1".into()))
        );
        assert_eq!(
            account_item.get("class"),
            Some(&AttributeValue::S("Odd".into()))
        );
        let mut sums: HashMap<String, i64> = HashMap::new();
        for item in summary_items(&fx).await {
            for (k, v) in item {
                if let AttributeValue::N(n) = v {
                    *sums.entry(k).or_default() += n.parse::<i64>().unwrap();
                }
            }
        }
        assert_eq!((sums["class|Even"], sums["class|Odd"]), (150, 150));
        assert_eq!(
            [
                sums["bill_group|G0"],
                sums["bill_group|G1"],
                sums["bill_group|G2"]
            ],
            [100, 100, 100]
        );

        counter.reset();
        let got = store.filter_values(&t(), &[d1()]).await.unwrap();
        assert_eq!(
            classes(&got[0]),
            [("Even".to_owned(), 150), ("Odd".to_owned(), 150)]
        );
        // The division's flag, then its summary shards: no contact is read.
        assert_eq!(counter.get("BatchGetItem"), 1);
        assert_eq!(took(&counter, "Query"), (1, 2));

        // A sync that changes nothing writes no account item and no summary.
        store.upsert_accounts(&t(), &accounts).await.unwrap();
        assert_eq!(counter.get("TransactWriteItems"), 0);
        counter.reset();
        // Deleting an account: one transaction takes it and its contribution out.
        assert!(store
            .delete_account(&t(), &AccountId::parse("a0").unwrap())
            .await
            .unwrap());
        assert_eq!(counter.get("TransactWriteItems"), 1);
        let got = store.filter_values(&t(), &[d1()]).await.unwrap();
        assert_eq!(
            classes(&got[0]),
            [("Even".to_owned(), 148), ("Odd".to_owned(), 150)]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_division_from_before_summaries_is_read_from_its_contacts() {
        let (fx, counter) = fixture().await;
        let store = &fx.store;
        // As the previous release wrote a division: first sync time, no `fv`.
        let mut div: Item = HashMap::new();
        for (k, v) in [
            ("pk", "T#t1"),
            ("sk", "DIV#d1"),
            ("name", "Old"),
            ("email_from", "old@example.org"),
            ("first_synced_at", "2026-01-01T00:00:00.000000000Z"),
        ] {
            div.insert(k.into(), AttributeValue::S(v.into()));
        }
        raw_put(&fx, div).await;
        // Renaming it does not make its summary believed: it was never complete.
        counter.reset();
        store.put_division(&t(), &division()).await.unwrap();
        assert_eq!(took(&counter, "UpdateItem"), (1, 1), "a known division");
        assert_eq!(
            raw_get(&fx, "T#t1", "DIV#d1").await.unwrap().get("fv"),
            None
        );

        let accounts: Vec<Account> = (0..20).map(|i| account(i, "Old", 1 + i % 2)).collect();
        store.upsert_accounts(&t(), &accounts).await.unwrap();
        counter.reset();
        let got = store.filter_values(&t(), &[d1()]).await.unwrap();
        assert_eq!(classes(&got[0]), [("Old".to_owned(), 30)]);
        // The flag, then its 16 contact partitions (as a count reads them).
        assert_eq!(counter.get("BatchGetItem"), 1);
        assert_eq!(took(&counter, "Query"), (16, 17));

        // Account items as the previous release wrote them: no version, no values.
        for a in ["a1", "a2", "a3"] {
            fx.raw
                .update_item()
                .table_name(&fx.table)
                .key("pk", AttributeValue::S(format!("T#t1#ACC#{a}")))
                .key("sk", AttributeValue::S("A".into()))
                .update_expression("REMOVE ver, #c, bill_group, #s, site_source")
                .expression_attribute_names("#c", "class")
                .expression_attribute_names("#s", "source")
                .send()
                .await
                .unwrap();
        }
        // A resync rewrites one whole (with a version), a contact moving away shrinks another
        // (which stays old), and one is deleted: each under the condition that it is still old.
        let moved = AccountBuilder::new("z1")
            .class("New")
            .contacts([ContactBuilder::new("a2-c0").email("a2.0@example.com")])
            .build();
        store
            .upsert_accounts(&t(), &[account(1, "Renewed", 2), moved])
            .await
            .unwrap();
        assert!(store
            .delete_account(&t(), &AccountId::parse("a3").unwrap())
            .await
            .unwrap());
        let a1 = raw_get(&fx, "T#t1#ACC#a1", "A").await.unwrap();
        assert_eq!(a1.get("ver"), Some(&AttributeValue::N("1".into())));
        assert_eq!(a1.get("class"), Some(&AttributeValue::S("Renewed".into())));
        let a2 = raw_get(&fx, "T#t1#ACC#a2", "A").await.unwrap();
        assert_eq!(a2.get("ver"), None);
        assert_eq!(a2.get("contacts"), Some(&AttributeValue::L(vec![])));
        assert_eq!(raw_get(&fx, "T#t1#ACC#a3", "A").await, None);
        let got = store.filter_values(&t(), &[d1()]).await.unwrap();
        assert_eq!(
            classes(&got[0]),
            [
                ("New".to_owned(), 1),
                ("Old".to_owned(), 30 - 2 - 1 - 2),
                ("Renewed".to_owned(), 2),
            ]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_summary_shard_turns_the_division_off_and_the_sync_goes_on() {
        let (fx, _) = fixture().await;
        let store = &fx.store;
        store.put_division(&t(), &division()).await.unwrap();
        // Each summary shard of d1 a few bytes under moto's item limit (405,000 bytes): the
        // next value added to any of them breaks it.
        for shard in 0..16 {
            let mut item: Item = HashMap::new();
            item.insert("pk".into(), AttributeValue::S("T#t1#FV".into()));
            item.insert("sk".into(), AttributeValue::S(format!("d1#{shard:02}")));
            item.insert("filler".into(), AttributeValue::S("x".repeat(404_960)));
            raw_put(&fx, item).await;
        }
        let accounts: Vec<Account> = (0..10).map(|i| account(i, "Full", 2)).collect();
        store.upsert_accounts(&t(), &accounts).await.unwrap();
        let div = raw_get(&fx, "T#t1", "DIV#d1").await.unwrap();
        assert_eq!(div.get("fv"), Some(&AttributeValue::S("off".into())));
        assert!(
            raw_get(&fx, "T#t1#ACC#a3", "A").await.is_some(),
            "the accounts are written"
        );
        let got = store.filter_values(&t(), &[d1()]).await.unwrap();
        assert_eq!(classes(&got[0]), [("Full".to_owned(), 20)]);
        // And later syncs and deletions leave the summary alone.
        store
            .upsert_accounts(&t(), &[account(0, "Changed", 2)])
            .await
            .unwrap();
        assert!(store
            .delete_account(&t(), &AccountId::parse("a1").unwrap())
            .await
            .unwrap());
        let got = store.filter_values(&t(), &[d1()]).await.unwrap();
        assert_eq!(
            classes(&got[0]),
            [("Changed".to_owned(), 2), ("Full".to_owned(), 16)]
        );
    }
}
