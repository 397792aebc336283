//! The send use cases (`portal_core::usecases::send`) driven in-process, on the embedded
//! store and on DynamoDB (moto): exactly one email per eligible contact, replays, duplicated
//! and shuffled bus messages and concurrent campaigns send nothing twice, a run killed at
//! any step and re-run loses nothing, and the mailer's answers (throttled, rejected) end
//! where the spec says.
//!
//! # Layout
//!
//! - `fixtures.rs`: the seeded tenant, campaigns, the recording mailer, [`SendDeps`].
//! - `cases.rs`: the cases, each an `async fn(Arc<dyn Store>)`.
//! - `kill.rs`: the store and mailer that die at a chosen step, and the kill-and-resume cases
//!   (of a bulk send and of a hand-picked selection).
//! - `sweep.rs`: lost messages repaired by the sweeper, each an
//!   `async fn(Arc<dyn Store>, Arc<dyn CampaignSweepStore>)` (`sweep_cases!`).
//! - here: `send_cases!` turns each listed case into a `#[tokio::test]` on a fresh store;
//!   `sqlite` and `dynamodb` list them. Every case runs on both stores; only the
//!   kill-and-resume check differs in size, each step costing a round trip to moto.
//!
//! [`SendDeps`]: portal_core::usecases::send::SendDeps

use std::sync::Arc;

use portal_core::ports::{CampaignSweepStore, Store};

mod cases;
mod fixtures;
mod kill;
mod sweep;
mod window;

/// A fresh, empty store for one test, with whatever must live as long as it.
struct Fresh {
    store: Arc<dyn Store>,
    /// The same store as the sweeper sees it.
    sweep: Arc<dyn CampaignSweepStore>,
    /// DynamoDB tests take moto one at a time (see `portal_testkit::moto::Exclusive`).
    _turn: Option<portal_testkit::moto::Exclusive<()>>,
}

/// `#[tokio::test]`s running `module::case(store)` on a fresh store from `$make`.
macro_rules! send_cases {
    ($make:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fresh = $make.await;
                $crate::$module::$case(fresh.store.clone()).await;
            }
        )*
    };
}

/// `#[tokio::test]`s running `sweep::case(store, sweep)` on a fresh store from `$make`.
macro_rules! sweep_cases {
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fresh = $make.await;
                $crate::sweep::$case(fresh.store.clone(), fresh.sweep.clone()).await;
            }
        )*
    };
}

/// The cases every store runs whole.
macro_rules! on_every_store {
    ($make:expr) => {
        sweep_cases!($make;
            a_dropped_first_publish_is_repaired_by_the_first_sweep_after_idle_and_sends_each_contact_once,
            a_sending_campaign_whose_deliveries_were_lost_is_completed_after_a_sweep,
            a_refused_first_publish_and_a_refused_republish_are_both_retried,
            a_paused_campaign_is_never_republished,
        );
        send_cases!($make;
            cases::a_campaign_sends_one_email_to_each_eligible_contact_and_completes,
            cases::emails_show_the_division_by_default_and_the_display_name_the_campaign_started_with,
            cases::a_display_name_policy_names_the_company_and_the_division,
            cases::an_email_carries_a_registration_link_matching_the_stored_hash_and_one_click_unsubscribe,
            cases::running_a_finished_campaign_again_or_a_second_campaign_sends_nothing,
            cases::a_replayed_fan_out_page_yields_the_same_batches_and_claims_nothing_new,
            cases::a_duplicated_delivery_batch_sends_nothing_twice,
            cases::two_concurrent_campaigns_over_the_same_contacts_send_each_contact_one_email,
            cases::bus_messages_redelivered_twice_in_a_shuffled_order_send_each_contact_one_email,
            cases::a_throttled_send_is_retried_after_a_back_off_and_sent_once,
            cases::throttling_that_never_ends_leaves_the_invitation_in_process_for_a_rerun,
            cases::a_rejected_message_ends_failed_with_the_reason,
            cases::failures_over_the_threshold_pause_the_campaign_with_the_reason,
            cases::the_configured_send_rate_spaces_the_sends,
            cases::a_contact_invited_before_is_left_alone_when_limited_to_uninvited_even_on_replays,
            cases::a_suppressed_address_is_never_sent_to_and_is_counted,
            cases::another_tenant_cannot_run_or_deliver_a_campaign_it_does_not_own,
            cases::a_hand_picked_campaign_redelivered_twice_in_a_shuffled_order_sends_each_picked_contact_one_email,
            cases::a_campaign_sends_its_template_as_it_was_when_its_fan_out_started,
            cases::a_paused_campaign_sends_nothing_from_batches_that_carry_its_template,
            window::two_copies_of_one_batch_delivered_at_once_send_each_email_once,
            window::a_crash_after_the_mail_service_accepted_a_group_resends_only_what_it_never_acknowledged,
            window::one_person_gets_one_invitation_whichever_contacts_share_the_address,
            window::skips_are_counted_once_however_often_a_page_is_replayed,
        );
    };
}

mod sqlite {
    use super::*;
    use portal_embedded::sqlite::SqliteStore;

    async fn fresh() -> Fresh {
        let store = Arc::new(SqliteStore::open_in_memory().unwrap());
        Fresh {
            store: store.clone(),
            sweep: store,
            _turn: None,
        }
    }

    on_every_store!(fresh());
    send_cases!(fresh();
        kill::a_run_killed_at_any_step_and_resumed_sends_every_contact_exactly_once,
        kill::a_hand_picked_run_killed_at_any_step_and_resumed_sends_every_picked_contact_exactly_once,
        kill::with_the_outbox_a_killed_and_resumed_run_leaves_exactly_one_email_per_contact,
        // Store-agnostic chunking in the use case; on DynamoDB it needs 620 contacts, which
        // take moto minutes: `bench-dynamodb --send` runs 1,000-contact pages there instead
        // (and checks one email per address).
        cases::a_fan_out_page_larger_than_one_claim_call_claims_and_sends_everyone_once,
    );
}

mod dynamodb {
    use super::*;
    use portal_aws::dynamodb::DynamoStore;
    use portal_testkit::moto::{fresh_table, Exclusive, Moto};

    async fn fresh() -> Fresh {
        let turn = Exclusive::new(|| async {}).await;
        let client: aws_sdk_dynamodb::Client = Moto::shared().client();
        let table = fresh_table(&client).await;
        // moto does not isolate concurrent transactions (see `serialize_transactions`).
        let store = Arc::new(DynamoStore::new(client, table).serialize_transactions());
        Fresh {
            store: store.clone(),
            sweep: store,
            _turn: Some(turn),
        }
    }

    on_every_store!(fresh());
    send_cases!(fresh();
        kill::a_run_killed_at_sampled_steps_and_resumed_sends_every_contact_exactly_once,
    );
}
