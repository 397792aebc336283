//! The store contract: the same cases, run against every store adapter.
//!
//! Cases live in modules by capability (`cases.rs`: divisions, accounts, contacts, counts,
//! lists, suppression; `filter_values.rs`: the values the list filters take), each an
//! `async fn(&dyn Store)`. `contract_suite!` turns every listed case into a
//! `#[tokio::test]` for one adapter; `sqlite.rs` and `dynamodb.rs` each invoke it
//! with a way to make a fresh, empty store. A new capability adds a module of cases and one
//! `module: [case, ...]` entry below.
//!
//! Cases that drive the send use cases over the store (`hand_picked.rs`) take an
//! `Arc<dyn Store>` instead (the use cases' dependencies hold one): they are listed in the
//! `shared` section, and [`Shared`] hands each adapter's store over as one.

macro_rules! contract_suite {
    ($make:expr) => {
        contract_suite!(@modules $make;
            cases: [
            divisions_round_trip,
            divisions_update_in_place_and_list_in_id_order,
            divisions_page_by_id_and_the_last_page_has_no_cursor,
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
            contacts_sharing_an_address_are_counted_in_duplicate_address,
            every_group_pages_to_exactly_the_oracle_set,
            search_matches_email_names_and_account_number,
            a_forged_cursor_is_rejected,
            tenants_never_see_count_or_change_each_other,
            random_fixtures_count_like_the_domain,
            ],
            campaigns: [
            a_campaign_round_trips_with_every_field,
            a_second_bulk_send_within_24_hours_is_held_and_writes_nothing,
            the_division_lock_holds_at_23_59_59_and_frees_at_24_00_00,
            individual_and_recurring_campaigns_take_no_division_lock,
            an_idempotency_key_answers_the_same_campaign_and_refuses_another_body,
            claims_sort_out_accepted_missing_and_held_contacts,
            a_replayed_claim_is_already_claimed_and_another_campaign_is_held,
            the_contact_claim_holds_at_23_59_59_and_frees_at_24_00_00,
            two_concurrent_campaigns_claim_each_contact_exactly_once,
            status_moves_only_from_the_expected_status_and_counts_add_up,
            invitations_page_in_contact_order_and_record_their_category,
            campaigns_and_claims_never_cross_tenants,
            claims_and_outcomes_keep_the_category_counters_equal_to_a_recount,
            invitations_and_suppressions_are_read_in_batches,
            a_shuffled_duplicated_fact_stream_ends_like_the_ordered_one_and_counters_never_drift,
            a_permanent_bounce_or_a_complaint_suppresses_the_address_once,
            campaigns_list_newest_first_under_each_of_their_divisions,
            invitations_filter_by_category_and_search_and_page,
            a_recount_agrees_with_the_counters_and_fix_stores_it,
            facts_for_a_missing_invitation_or_another_tenant_change_nothing,
            concurrent_fact_calls_lose_no_update,
            an_address_is_claimed_once_per_24_hours_whichever_contact_carries_it,
            a_delivery_lease_is_held_by_one_owner_until_it_runs_out_or_is_done,
            outcomes_written_with_a_lost_lease_are_kept_and_say_so,
            a_paused_failed_or_missing_campaign_leases_no_batch,
            a_batch_last_write_says_whether_it_left_the_campaign_nothing_pending,
            ],
            templates: [
            a_saved_template_reads_back_whole,
            saving_a_template_again_replaces_it,
            templates_list_in_id_order,
            templates_page_by_id_and_the_last_page_has_no_cursor,
            deleting_a_template_reports_whether_it_existed,
            tenants_never_see_or_delete_each_others_templates,
            templates_do_not_show_up_as_divisions,
            ],
            senders: [
            sender_settings_are_none_until_saved_then_read_back_whole,
            saving_sender_settings_again_replaces_them,
            tenants_never_see_each_others_sender_settings,
            sender_settings_do_not_show_up_as_divisions,
            ],
            registration: [
            sync_gives_every_new_account_a_key_and_keeps_it_on_resync,
            a_synced_key_replaces_the_stored_one_and_absence_keeps_it,
            rotating_a_key_replaces_it_everywhere,
            accounts_are_found_by_number_with_their_contacts,
            a_claimed_invitation_is_found_by_its_token_hash,
            registering_through_an_invitation_accepts_the_contact_and_uses_the_token,
            registering_through_one_link_accepts_every_contact_of_the_address,
            a_link_joining_an_existing_login_brings_every_contact_of_the_address,
            an_address_shared_by_sixty_contacts_accepts_all_sixty,
            fifty_concurrent_registrations_of_one_address_make_one_login,
            one_token_under_twenty_concurrent_registrations_works_once,
            a_portal_key_registration_waits_for_its_address_to_be_confirmed,
            an_existing_login_on_the_key_path_writes_nothing,
            a_confirmation_link_works_once_until_it_expires,
            rate_limits_count_per_key_and_window_and_expire,
            requests_list_newest_first_filtered_and_paged,
            a_request_moves_only_from_the_status_it_was_read_in,
            open_requests_are_found_by_address_case_insensitively,
            other_emails_are_added_to_existing_contacts_only,
            a_portal_key_template_reads_back_as_its_kind,
            registration_data_never_crosses_tenants,
            ],
            filter_values: [
            filter_values_appear_after_a_sync_and_count_contacts,
            filter_values_follow_accounts_that_change_move_and_lose_contacts,
            filter_values_shrink_and_disappear_when_accounts_are_deleted,
            a_resync_that_changes_nothing_changes_no_value,
            tenants_never_see_or_change_each_others_filter_values,
            random_syncs_and_deletions_keep_filter_values_equal_to_the_contacts,
            a_sync_racing_its_retry_and_another_sync_counts_every_contact_once,
            ],
            recurring: [
            settings_round_trip_with_every_field,
            saving_a_setting_again_replaces_it_with_what_the_caller_sets,
            settings_list_in_id_order_and_nothing_else,
            deleting_a_setting_reports_whether_it_existed_and_keeps_its_runs,
            settings_and_runs_never_cross_tenants,
            enabled_settings_are_the_enabled_ones_of_every_tenant,
            a_day_starts_once_under_twenty_concurrent_starts,
            finishing_a_run_stores_its_campaign_and_that_it_finished,
            runs_list_newest_day_first_and_page_with_cursors,
            a_division_keeps_the_time_it_was_first_synced,
            invitations_sent_counts_each_claim_of_a_contact_once,
            a_recurring_campaign_round_trips_with_its_run,
            ],
            sweep: [
            active_campaigns_are_the_queued_fanning_out_and_sending_of_every_tenant_oldest_first,
            a_campaign_leaves_the_listing_when_it_finishes_and_a_paused_one_returns_on_resume,
            a_watch_record_is_written_only_over_the_record_read,
            watch_records_keep_whole_seconds_and_compare_to_the_second,
            watch_records_never_cross_tenants,
            twenty_concurrent_sweeps_over_one_record_write_it_once,
            ],
            selections: [
            a_hand_picked_campaign_round_trips_with_its_ids_in_the_order_picked,
            the_largest_selection_of_the_longest_ids_is_recorded_whole,
            a_hand_picked_campaign_neither_checks_nor_takes_the_division_lock,
            a_hand_picked_campaign_answers_its_idempotency_key,
            contacts_are_located_and_read_in_batches_within_their_tenant,
            ],
        );
        contract_suite!(@shared $make;
            hand_picked: [
            a_selection_sends_exactly_the_picked_eligible_contacts_and_counts_the_rest,
            a_selection_is_not_held_by_the_division_lock_and_does_not_take_it,
            a_selection_never_reaches_another_tenants_contact,
            ],
        );
    };
    (@shared $make:expr; $($module:ident : [$($case:ident),* $(,)?]),* $(,)?) => {
        $(
            mod $module {
                #[allow(unused_imports)]
                use super::*;
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        let store = $make.await;
                        $crate::$module::$case($crate::Shared::shared(&store)).await;
                    }
                )*
            }
        )*
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

/// The ids the cases write, parsed (a bad literal is a bug in the case).
mod ids {
    use portal_core::domain::{ContactId, DivisionId, TenantId};

    pub fn t(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    pub fn div(s: &str) -> DivisionId {
        DivisionId::parse(s).unwrap()
    }

    pub fn cid(s: &str) -> ContactId {
        ContactId::parse(s).unwrap()
    }
}

mod campaigns;
mod cases;
mod dynamodb;
mod dynamodb_campaigns;
mod dynamodb_sweep;
mod filter_values;
mod hand_picked;
mod recurring;
mod registration;
mod selections;
mod senders;
mod sqlite;
mod sweep;
mod templates;

use std::sync::Arc;

use portal_core::ports::Store;

/// The case's store as an `Arc<dyn Store>`, for cases that drive the use cases. Both
/// adapters' handles are cheap clones sharing one database; a DynamoDB test keeps its turn
/// on moto for as long as it holds the `Exclusive`.
trait Shared {
    fn shared(&self) -> Arc<dyn Store>;
}

impl<S: Store + 'static> Shared for Arc<S> {
    fn shared(&self) -> Arc<dyn Store> {
        self.clone()
    }
}

impl<S: Store + Clone + 'static> Shared for portal_testkit::moto::Exclusive<S> {
    fn shared(&self) -> Arc<dyn Store> {
        Arc::new((**self).clone())
    }
}
