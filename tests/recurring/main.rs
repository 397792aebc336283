//! Recurring invitations (`portal_core::usecases::recurring`) driven in-process, on the
//! embedded store and on DynamoDB (moto), with an injectable clock: cadence and maximum over
//! 60 simulated days, exactly one run per local day (twice at once, killed half-way, across
//! both DST changes, at 23:00 in Auckland), a recurring run and a manual bulk send over one
//! division on the same day, a run finding nobody, and the `new_divisions_only` scope.
//!
//! # Layout
//!
//! - `../send/fixtures.rs` (and `../send/kill.rs`, which it needs): the send suite's mailer
//!   that records what it accepted, the sleeper that never sleeps and [`SendDeps`], reused.
//! - `world.rs`: the seeded tenant (divisions, contacts, the template), the [`Harness`] that
//!   runs settings and drains their sends at a chosen local time, and a bus that refuses.
//! - `cases.rs`: the cases, each an `async fn(Arc<dyn Store>)`.
//! - here: `recurring_cases!` turns each listed case into a `#[tokio::test]` on a fresh
//!   store; `sqlite` and `dynamodb` list the same cases.
//!
//! [`SendDeps`]: portal_core::usecases::send::SendDeps
//! [`Harness`]: world::Harness

use std::sync::Arc;

use portal_core::ports::Store;

#[path = "../send/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;
#[path = "../send/kill.rs"]
#[allow(dead_code)]
mod kill;

mod cases;
mod world;

/// A fresh, empty store for one test, with whatever must live as long as it.
struct Fresh {
    store: Arc<dyn Store>,
    /// DynamoDB tests take moto one at a time (see `portal_testkit::moto::Exclusive`).
    _turn: Option<portal_testkit::moto::Exclusive<()>>,
}

/// `#[tokio::test]`s running `cases::case(store)` on a fresh store from `$make`.
macro_rules! recurring_cases {
    ($make:expr; $($(#[$attr:meta])* $case:ident),* $(,)?) => {
        $(
            $(#[$attr])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fresh = $make.await;
                $crate::cases::$case(fresh.store.clone()).await;
            }
        )*
    };
}

/// The cases every store runs.
macro_rules! on_every_store {
    ($make:expr) => {
        recurring_cases!($make;
            sixty_days_invite_every_pending_contact_max_times_at_least_cadence_apart,
            the_same_run_twice_at_once_makes_one_campaign_and_sends_each_email_once,
            a_run_killed_after_recording_its_campaign_and_run_again_invites_each_contact_once,
            a_manual_send_then_a_recurring_run_on_one_division_invite_each_contact_once,
            a_recurring_run_then_a_manual_send_on_one_division_invite_each_contact_once,
            a_recurring_run_and_a_manual_send_at_once_invite_each_contact_once,
            a_run_finding_nobody_records_that_it_ran_and_creates_no_campaign,
            a_run_whose_sender_is_no_longer_allowed_records_its_day_and_sends_nothing,
            new_divisions_only_covers_the_divisions_first_synced_after_saving,
            an_hourly_tick_runs_nine_in_chicago_once_a_local_day_across_both_dst_changes,
            eleven_pm_in_auckland_runs_for_the_auckland_date,
            a_disabled_or_deleted_setting_runs_nothing,
            a_resumed_run_whose_campaign_already_went_out_keeps_its_campaign_in_the_history,
            a_contact_reached_seconds_earlier_than_last_week_is_still_reminded_on_the_cadence_day,
            the_same_run_twice_at_once_with_steps_handled_at_once_sends_each_email_once,
            // Was a known issue until delivery batches were leased (issue 13).
            a_fan_out_message_delivered_twice_at_once_sends_nothing_twice,
        );
    };
}

mod sqlite {
    use super::*;
    use portal_embedded::sqlite::SqliteStore;

    async fn fresh() -> Fresh {
        Fresh {
            store: Arc::new(SqliteStore::open_in_memory().unwrap()),
            _turn: None,
        }
    }

    on_every_store!(fresh());
}

mod dynamodb {
    use super::*;
    use portal_aws::dynamodb::DynamoStore;
    use portal_testkit::moto::{fresh_table, Exclusive, Moto};

    async fn fresh() -> Fresh {
        let turn = Exclusive::new(|| async {}).await;
        let client: aws_sdk_dynamodb::Client = Moto::shared().client();
        let table = fresh_table(&client).await;
        Fresh {
            // moto does not isolate concurrent transactions (see `serialize_transactions`).
            store: Arc::new(DynamoStore::new(client, table).serialize_transactions()),
            _turn: Some(turn),
        }
    }

    on_every_store!(fresh());
}
