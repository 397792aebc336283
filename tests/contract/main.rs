//! The store contract: the same cases, run against every store adapter.
//!
//! Cases live in modules by capability (`cases.rs`: divisions, accounts, contacts, counts,
//! lists, suppression), each an `async fn(&dyn Store)`. `contract_suite!` turns every listed
//! case into a `#[tokio::test]` for one adapter; `sqlite.rs` and `dynamodb.rs` each invoke it
//! with a way to make a fresh, empty store. A new capability adds a module of cases and one
//! `module: [case, ...]` entry below.

macro_rules! contract_suite {
    ($make:expr) => {
        contract_suite!(@modules $make;
            cases: [
            divisions_round_trip,
            divisions_update_in_place_and_list_in_id_order,
            upserting_the_same_accounts_twice_changes_nothing,
            a_sync_replaces_the_contact_set_of_an_account,
            portal_status_and_invitations_survive_a_resync,
            a_synced_last_login_replaces_the_stored_one_and_absence_keeps_it,
            a_contact_synced_under_another_account_moves_with_it,
            deleting_an_account_removes_its_contacts,
            state_changes_on_a_missing_contact_report_false,
            counts_agree_with_the_domain_for_every_filter,
            the_24_hour_hold_ends_exactly_at_24_hours,
            suppressed_addresses_are_counted_case_insensitively,
            every_group_pages_to_exactly_the_oracle_set,
            search_matches_email_names_and_account_number,
            a_forged_cursor_is_rejected,
            tenants_never_see_count_or_change_each_other,
            random_fixtures_count_like_the_domain,
            ],
            templates: [
            a_saved_template_reads_back_whole,
            saving_a_template_again_replaces_it,
            templates_list_in_id_order,
            deleting_a_template_reports_whether_it_existed,
            tenants_never_see_or_delete_each_others_templates,
            templates_do_not_show_up_as_divisions,
            ],
        );
    };
    (@modules $make:expr; $($module:ident : [$($case:ident),* $(,)?]),* $(,)?) => {
        $(
            mod $module {
                #[allow(unused_imports)]
                use super::*;
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        let store = $make.await;
                        $crate::$module::$case(&*store).await;
                    }
                )*
            }
        )*
    };
}

mod cases;
mod dynamodb;
mod sqlite;
mod templates;
