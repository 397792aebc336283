//! Contract cases for the template store: create, replace, read back, list in id order,
//! delete, and tenant isolation.

use portal_core::domain::{Template, TemplateId, TenantId};
use portal_core::ports::{Store, StoreError};

use crate::cases::tenant;

fn tid(s: &str) -> TemplateId {
    TemplateId::parse(s).unwrap()
}

fn template(id: &str, subject: &str) -> Template {
    Template::new(
        tid(id),
        format!("Template {id}"),
        subject,
        "<p>Hello [ContactName] of [AccountName] ([AccountNumber]), [DivisionName]:</p>\
         <a href=\"[PortalLink]\">Register</a> key [PortalKey] <a href=\"[UnsubscribeLink]\">stop</a> ✓",
        "Hello [ContactName]\r\nRegister: [PortalLink]\nUnsubscribe: [UnsubscribeLink] ✓",
    )
    .unwrap()
}

/// Every template of `t`, following the cursors.
pub async fn all_templates(store: &dyn Store, t: &TenantId) -> Vec<Template> {
    let (mut all, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let page = store
            .list_templates(t, cursor.as_deref(), 500)
            .await
            .unwrap();
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return all,
        }
    }
}

pub async fn a_saved_template_reads_back_whole(store: &dyn Store) {
    let t = tenant("tpl-a");
    assert_eq!(store.get_template(&t, &tid("welcome")).await.unwrap(), None);
    let saved = template("welcome", "Welcome to [DivisionName]");
    store.put_template(&t, &saved).await.unwrap();
    let read = store.get_template(&t, &tid("welcome")).await.unwrap();
    assert_eq!(read.as_ref(), Some(&saved));
    let read = read.unwrap();
    assert_eq!(read.subject(), "Welcome to [DivisionName]");
    assert_eq!(read.html(), saved.html());
    assert_eq!(read.text(), saved.text());
}

pub async fn saving_a_template_again_replaces_it(store: &dyn Store) {
    let t = tenant("tpl-b");
    store
        .put_template(&t, &template("welcome", "First"))
        .await
        .unwrap();
    let second = template("welcome", "Second [ContactName]");
    store.put_template(&t, &second).await.unwrap();
    assert_eq!(
        store.get_template(&t, &tid("welcome")).await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(all_templates(store, &t).await, vec![second]);
}

pub async fn templates_list_in_id_order(store: &dyn Store) {
    let t = tenant("tpl-c");
    assert!(all_templates(store, &t).await.is_empty());
    for id in ["zeta", "Alpha", "beta", "a.1", "a-1"] {
        store.put_template(&t, &template(id, id)).await.unwrap();
    }
    let ids: Vec<String> = all_templates(store, &t)
        .await
        .iter()
        .map(|t| t.template_id().to_string())
        .collect();
    let mut expected: Vec<String> = ["zeta", "Alpha", "beta", "a.1", "a-1"]
        .map(String::from)
        .to_vec();
    expected.sort();
    assert_eq!(ids, expected);
}

pub async fn templates_page_by_id_and_the_last_page_has_no_cursor(store: &dyn Store) {
    let (t, other) = (tenant("tpl-g"), tenant("tpl-g2"));
    let ids = ["t1", "t2", "t3", "t4", "t5", "t6"];
    for id in ids {
        store.put_template(&t, &template(id, id)).await.unwrap();
    }
    store
        .put_template(&other, &template("t25", "theirs"))
        .await
        .unwrap();
    let mut pages = Vec::new();
    let mut cursor = None::<String>;
    loop {
        let page = store
            .list_templates(&t, cursor.as_deref(), 4)
            .await
            .unwrap();
        pages.push(
            page.items
                .iter()
                .map(|t| t.template_id().to_string())
                .collect::<Vec<_>>(),
        );
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, [vec!["t1", "t2", "t3", "t4"], vec!["t5", "t6"]]);
    // Exactly a page's worth: no cursor to an empty page.
    let page = store.list_templates(&t, None, 6).await.unwrap();
    assert_eq!((page.items.len(), page.next_cursor), (6, None));
    // A limit of 0 is read as 1; one above the largest page as the largest.
    let page = store.list_templates(&t, None, 0).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.next_cursor.is_some());
    // A cursor of this tenant's list continues only in the tenant it is used in.
    let first = store.list_templates(&t, None, 2).await.unwrap();
    let theirs = store
        .list_templates(&other, first.next_cursor.as_deref(), 10)
        .await
        .unwrap();
    assert_eq!(theirs.items.len(), 1);
    assert_eq!(theirs.items[0].subject(), "theirs");
    // A cursor another list made, or a forged one, is refused.
    let division_cursor =
        portal_core::ports::cursor::encode(portal_core::ports::cursor::DIVISIONS, "t1");
    for bad in [division_cursor.as_str(), "not-a-cursor", "dHBsMTo"] {
        assert!(
            matches!(
                store.list_templates(&t, Some(bad), 2).await,
                Err(StoreError::InvalidCursor(_))
            ),
            "{bad}"
        );
    }
}

pub async fn deleting_a_template_reports_whether_it_existed(store: &dyn Store) {
    let t = tenant("tpl-d");
    store
        .put_template(&t, &template("welcome", "Hi"))
        .await
        .unwrap();
    store
        .put_template(&t, &template("other", "Hi"))
        .await
        .unwrap();
    assert!(store.delete_template(&t, &tid("welcome")).await.unwrap());
    assert!(!store.delete_template(&t, &tid("welcome")).await.unwrap());
    assert!(!store.delete_template(&t, &tid("never")).await.unwrap());
    assert_eq!(store.get_template(&t, &tid("welcome")).await.unwrap(), None);
    assert_eq!(all_templates(store, &t).await.len(), 1);
}

pub async fn tenants_never_see_or_delete_each_others_templates(store: &dyn Store) {
    let (a, b) = (tenant("tpl-e1"), tenant("tpl-e2"));
    let mine = template("welcome", "Tenant A");
    store.put_template(&a, &mine).await.unwrap();
    assert_eq!(store.get_template(&b, &tid("welcome")).await.unwrap(), None);
    assert!(all_templates(store, &b).await.is_empty());
    assert!(!store.delete_template(&b, &tid("welcome")).await.unwrap());
    // The same id in another tenant is another template.
    let theirs = template("welcome", "Tenant B");
    store.put_template(&b, &theirs).await.unwrap();
    assert_eq!(
        store.get_template(&a, &tid("welcome")).await.unwrap(),
        Some(mine)
    );
    assert_eq!(all_templates(store, &b).await, vec![theirs]);
}

pub async fn templates_do_not_show_up_as_divisions(store: &dyn Store) {
    let t = tenant("tpl-f");
    store
        .put_template(&t, &template("welcome", "Hi"))
        .await
        .unwrap();
    assert!(store.list_divisions(&t).await.unwrap().is_empty());
}
