//! Contract cases for the template store: create, replace, read back, list in id order,
//! delete, and tenant isolation.

use portal_core::domain::{Template, TemplateId};
use portal_core::ports::Store;

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
    assert_eq!(store.list_templates(&t).await.unwrap(), vec![second]);
}

pub async fn templates_list_in_id_order(store: &dyn Store) {
    let t = tenant("tpl-c");
    assert!(store.list_templates(&t).await.unwrap().is_empty());
    for id in ["zeta", "Alpha", "beta", "a.1", "a-1"] {
        store.put_template(&t, &template(id, id)).await.unwrap();
    }
    let ids: Vec<String> = store
        .list_templates(&t)
        .await
        .unwrap()
        .iter()
        .map(|t| t.template_id().to_string())
        .collect();
    let mut expected: Vec<String> = ["zeta", "Alpha", "beta", "a.1", "a-1"]
        .map(String::from)
        .to_vec();
    expected.sort();
    assert_eq!(ids, expected);
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
    assert_eq!(store.list_templates(&t).await.unwrap().len(), 1);
}

pub async fn tenants_never_see_or_delete_each_others_templates(store: &dyn Store) {
    let (a, b) = (tenant("tpl-e1"), tenant("tpl-e2"));
    let mine = template("welcome", "Tenant A");
    store.put_template(&a, &mine).await.unwrap();
    assert_eq!(store.get_template(&b, &tid("welcome")).await.unwrap(), None);
    assert!(store.list_templates(&b).await.unwrap().is_empty());
    assert!(!store.delete_template(&b, &tid("welcome")).await.unwrap());
    // The same id in another tenant is another template.
    let theirs = template("welcome", "Tenant B");
    store.put_template(&b, &theirs).await.unwrap();
    assert_eq!(
        store.get_template(&a, &tid("welcome")).await.unwrap(),
        Some(mine)
    );
    assert_eq!(store.list_templates(&b).await.unwrap(), vec![theirs]);
}

pub async fn templates_do_not_show_up_as_divisions(store: &dyn Store) {
    let t = tenant("tpl-f");
    store
        .put_template(&t, &template("welcome", "Hi"))
        .await
        .unwrap();
    assert!(store.list_divisions(&t).await.unwrap().is_empty());
}
