//! Recurring invitations: a tenant's standing order to invite new contacts and remind pending
//! ones, run once per local day at a chosen hour.
//!
//! # When a setting runs
//!
//! A setting names an IANA time zone and an hour of the day. Its **run day** is a date in
//! that zone; the run of a day is **due** from that day's `hour_of_day:00` local time (a
//! time that does not exist because of a DST gap resolves forward, as EventBridge Scheduler
//! does). [`RecurringSetting::due_day`] answers the day a run is due for at an instant, so
//! a scheduler that was stopped catches up with the *latest* missed day once, never with
//! every missed day.
//!
//! # Whom a run targets
//!
//! In the setting's scope and filters: contacts never invited (`not_sent`), and `pending`
//! contacts whose last invitation is at least `cadence_days` old and who have had fewer than
//! `max_invitations_per_contact` invitations (counted per contact, across every path) —
//! [`ReminderRule::targets`]. Every rule of a manual send still holds on top (accepted never,
//! suppressed and address-less skipped, the per-contact 24-hour claim).

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};
use time::OffsetDateTime;

use super::{ContactRecord, DivisionId, DomainError, Email, Filters, PortalStatus, TemplateId};

/// Longest cadence accepted, in days.
pub const MAX_CADENCE_DAYS: u16 = 365;
/// Most invitations a setting may send one contact.
pub const MAX_INVITATIONS_PER_CONTACT: u16 = 50;

/// An IANA time zone name that exists in the bundled time zone database.
#[derive(Clone, PartialEq, Eq)]
pub struct TimeZoneName {
    name: String,
    tz: jiff::tz::TimeZone,
}

impl TimeZoneName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim();
        let tz = jiff::tz::TimeZone::get(name).map_err(|_| DomainError::InvalidField {
            field: "time_zone",
            reason: format!(
                "{name:?} is not an IANA time zone (e.g. America/Chicago, Europe/Paris, UTC)"
            ),
        })?;
        // The database's own spelling (`america/chicago` → `America/Chicago`).
        let name = tz.iana_name().unwrap_or(name).to_owned();
        Ok(Self { name, tz })
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The local calendar date at `at`.
    pub fn date_at(&self, at: OffsetDateTime) -> LocalDate {
        let ts = jiff::Timestamp::from_second(at.unix_timestamp())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        LocalDate(ts.to_zoned(self.tz.clone()).date())
    }

    /// The instant `hour:00` local time on `date` (a gap resolves forward, a fold to the
    /// earlier instant).
    pub fn instant(&self, date: LocalDate, hour: u8) -> OffsetDateTime {
        let civil = date.0.at(hour as i8, 0, 0, 0);
        let ts = self
            .tz
            .to_ambiguous_zoned(civil)
            .compatible()
            .map(|z| z.timestamp().as_second())
            .unwrap_or(0);
        OffsetDateTime::from_unix_timestamp(ts).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

impl fmt::Debug for TimeZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimeZoneName({})", self.name)
    }
}

impl Serialize for TimeZoneName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

/// A calendar date in a setting's time zone: what a run is keyed by. Written `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalDate(jiff::civil::Date);

impl LocalDate {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        raw.trim()
            .parse::<jiff::civil::Date>()
            .map(LocalDate)
            .map_err(|_| DomainError::InvalidField {
                field: "date",
                reason: format!("{raw:?} is not a date written YYYY-MM-DD"),
            })
    }

    /// The next day.
    pub fn next(self) -> Self {
        LocalDate(self.0.tomorrow().unwrap_or(self.0))
    }
}

impl fmt::Display for LocalDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for LocalDate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Which divisions a setting covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every division of the tenant, now and later.
    All,
    /// Divisions first synced after the setting was saved.
    NewDivisionsOnly,
    /// These divisions.
    Divisions(Vec<DivisionId>),
}

impl Scope {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::All => "all",
            Self::NewDivisionsOnly => "new_divisions_only",
            Self::Divisions(_) => "divisions",
        }
    }
}

/// What a reminder run adds to a campaign's rules: which pending contacts are due again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderRule {
    pub cadence_days: u16,
    pub max_invitations_per_contact: u16,
}

/// How much earlier than `cadence_days` after its last invitation a pending contact is due
/// again. Runs happen once a day at one local hour, but a run reaches each contact some
/// seconds or minutes into that hour, never at the same offset twice, and a DST change makes
/// a local week an hour shorter or longer: without this slack, a reminder would slip a whole
/// day whenever this week's run reached the contact a second earlier than last week's.
pub const CADENCE_SLACK: time::Duration = time::Duration::HOUR;

impl ReminderRule {
    /// Whether a run targets `c` at `now`: never invited, or pending, last invited at least
    /// `cadence_days` ago (less [`CADENCE_SLACK`]) and invited fewer than the maximum times.
    /// (Accepted contacts are never targeted; the send rules decide the rest, the 24-hour
    /// claim included.)
    pub fn targets(&self, c: &ContactRecord, now: OffsetDateTime) -> bool {
        match c.portal_status {
            PortalStatus::Accepted => false,
            PortalStatus::NotSent => {
                u32::from(self.max_invitations_per_contact) > c.invitations_sent
            }
            PortalStatus::Pending => {
                let cadence = time::Duration::days(i64::from(self.cadence_days));
                c.invitations_sent < u32::from(self.max_invitations_per_contact)
                    && c.last_invited_at
                        .is_none_or(|t| now + CADENCE_SLACK >= t + cadence)
            }
        }
    }
}

/// A tenant's recurring invitation setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurringSetting {
    pub setting_id: super::RecurringId,
    pub enabled: bool,
    pub scope: Scope,
    pub filters: Filters,
    pub template_id: TemplateId,
    /// `None`: the first covered division's address, as a manual send over several
    /// divisions does.
    pub email_from: Option<Email>,
    pub rule: ReminderRule,
    /// 0–23, local time.
    pub hour_of_day: u8,
    pub time_zone: TimeZoneName,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl RecurringSetting {
    /// Checks the numbers a manager typed.
    pub fn check(rule: ReminderRule, hour_of_day: u8) -> Result<(), DomainError> {
        if !(1..=MAX_CADENCE_DAYS).contains(&rule.cadence_days) {
            return Err(DomainError::InvalidField {
                field: "cadence_days",
                reason: format!("must be from 1 to {MAX_CADENCE_DAYS} days"),
            });
        }
        if !(1..=MAX_INVITATIONS_PER_CONTACT).contains(&rule.max_invitations_per_contact) {
            return Err(DomainError::InvalidField {
                field: "max_invitations_per_contact",
                reason: format!("must be from 1 to {MAX_INVITATIONS_PER_CONTACT}"),
            });
        }
        if hour_of_day > 23 {
            return Err(DomainError::InvalidField {
                field: "hour_of_day",
                reason: "must be from 0 to 23 (local time)".into(),
            });
        }
        Ok(())
    }

    /// When the run of `date` is due.
    pub fn due_at(&self, date: LocalDate) -> OffsetDateTime {
        self.time_zone.instant(date, self.hour_of_day)
    }

    /// The day whose run is due at `now`, if any: today (local) once its hour has come,
    /// else yesterday — so a scheduler that wakes late still runs the latest missed day
    /// once. `None` for a disabled setting and before the first run day after saving.
    pub fn due_day(&self, now: OffsetDateTime) -> Option<LocalDate> {
        if !self.enabled {
            return None;
        }
        let today = self.time_zone.date_at(now);
        let day = if now >= self.due_at(today) {
            today
        } else {
            LocalDate(today.0.yesterday().ok()?)
        };
        // A setting saved during a day's hour runs that day; saved after it, from the next.
        (self.due_at(day) + time::Duration::HOUR > self.created_at).then_some(day)
    }

    /// The EventBridge Scheduler expression (evaluated in [`Self::time_zone`]).
    pub fn schedule_expression(&self) -> String {
        format!("cron(0 {} * * ? *)", self.hour_of_day)
    }
}

/// A setting as JSON: what the API answers and what stores keep (a store parses it back
/// with [`SettingDoc::into_setting`], so a stored setting passes the same checks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingDoc {
    pub recurring_id: String,
    pub enabled: bool,
    pub scope: String,
    #[serde(default)]
    pub division_ids: Vec<DivisionId>,
    #[serde(default)]
    pub filters: Filters,
    pub template_id: TemplateId,
    #[serde(default)]
    pub email_from: Option<Email>,
    pub cadence_days: u16,
    pub max_invitations_per_contact: u16,
    pub hour_of_day: u8,
    pub time_zone: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl RecurringSetting {
    pub fn to_doc(&self) -> SettingDoc {
        SettingDoc {
            recurring_id: self.setting_id.to_string(),
            enabled: self.enabled,
            scope: self.scope.as_str().to_owned(),
            division_ids: match &self.scope {
                Scope::Divisions(ids) => ids.clone(),
                _ => Vec::new(),
            },
            filters: self.filters.clone(),
            template_id: self.template_id.clone(),
            email_from: self.email_from.clone(),
            cadence_days: self.rule.cadence_days,
            max_invitations_per_contact: self.rule.max_invitations_per_contact,
            hour_of_day: self.hour_of_day,
            time_zone: self.time_zone.as_str().to_owned(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

impl SettingDoc {
    pub fn into_setting(self) -> Result<RecurringSetting, DomainError> {
        let rule = ReminderRule {
            cadence_days: self.cadence_days,
            max_invitations_per_contact: self.max_invitations_per_contact,
        };
        RecurringSetting::check(rule, self.hour_of_day)?;
        let scope = match self.scope.as_str() {
            "all" => Scope::All,
            "new_divisions_only" => Scope::NewDivisionsOnly,
            "divisions" => Scope::Divisions(self.division_ids),
            other => {
                return Err(DomainError::InvalidField {
                    field: "scope",
                    reason: format!("{other:?} is not one of all, new_divisions_only, divisions"),
                })
            }
        };
        Ok(RecurringSetting {
            setting_id: super::RecurringId::parse(self.recurring_id)?,
            enabled: self.enabled,
            scope,
            filters: self.filters,
            template_id: self.template_id,
            email_from: self.email_from,
            rule,
            hour_of_day: self.hour_of_day,
            time_zone: TimeZoneName::parse(&self.time_zone)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn setting(hour: u8, tz: &str) -> RecurringSetting {
        RecurringSetting {
            setting_id: super::super::RecurringId::parse("r1").unwrap(),
            enabled: true,
            scope: Scope::All,
            filters: Filters::default(),
            template_id: TemplateId::parse("welcome").unwrap(),
            email_from: None,
            rule: ReminderRule {
                cadence_days: 7,
                max_invitations_per_contact: 3,
            },
            hour_of_day: hour,
            time_zone: TimeZoneName::parse(tz).unwrap(),
            created_at: datetime!(2026-01-01 0:00 UTC),
            updated_at: datetime!(2026-01-01 0:00 UTC),
        }
    }

    #[test]
    fn a_setting_round_trips_through_its_document() {
        let mut s = setting(9, "Europe/Paris");
        s.scope = Scope::Divisions(vec![DivisionId::parse("d1").unwrap()]);
        s.email_from = Some(Email::parse("board@example.org").unwrap());
        let json = serde_json::to_string(&s.to_doc()).unwrap();
        let back: SettingDoc = serde_json::from_str(&json).unwrap();
        assert_eq!(back.into_setting().unwrap(), s);
    }

    #[test]
    fn unknown_zones_and_bad_numbers_are_refused() {
        assert!(TimeZoneName::parse("Mars/Olympus").is_err());
        assert!(TimeZoneName::parse("America/Chicago").is_ok());
        assert_eq!(
            TimeZoneName::parse(" america/chicago ").unwrap().as_str(),
            "America/Chicago"
        );
        let ok = ReminderRule {
            cadence_days: 7,
            max_invitations_per_contact: 3,
        };
        assert!(RecurringSetting::check(ok, 9).is_ok());
        assert!(RecurringSetting::check(ok, 24).is_err());
        assert!(RecurringSetting::check(
            ReminderRule {
                cadence_days: 0,
                ..ok
            },
            9
        )
        .is_err());
        assert!(RecurringSetting::check(
            ReminderRule {
                max_invitations_per_contact: 0,
                ..ok
            },
            9
        )
        .is_err());
    }

    #[test]
    fn nine_in_chicago_is_due_once_a_local_day_across_both_dst_changes() {
        let s = setting(9, "America/Chicago");
        // 2026-03-08: DST starts in the US; 2026-11-01: it ends.
        for (date, utc_hour) in [
            ("2026-03-07", 15),
            ("2026-03-08", 14),
            ("2026-03-09", 14),
            ("2026-10-31", 14),
            ("2026-11-01", 15),
            ("2026-11-02", 15),
        ] {
            let d = LocalDate::parse(date).unwrap();
            let due = s.due_at(d);
            assert_eq!(due.hour(), utc_hour, "{date}: {due}");
            assert_eq!(s.due_day(due), Some(d));
            assert_eq!(
                s.due_day(due - time::Duration::seconds(1))
                    .map(|x| x.next()),
                Some(d)
            );
        }
    }

    #[test]
    fn eleven_pm_in_auckland_runs_on_the_local_date() {
        let s = setting(23, "Pacific/Auckland");
        let d = LocalDate::parse("2026-06-15").unwrap();
        // NZST is UTC+12 in June: 23:00 local on the 15th is 11:00 UTC on the 15th.
        assert_eq!(s.due_at(d), datetime!(2026-06-15 11:00 UTC));
        assert_eq!(s.due_day(datetime!(2026-06-15 11:00 UTC)), Some(d));
        assert_eq!(s.schedule_expression(), "cron(0 23 * * ? *)");
    }

    #[test]
    fn a_setting_saved_during_its_hour_runs_that_day_and_after_it_waits() {
        let mut s = setting(9, "UTC");
        s.created_at = datetime!(2026-05-10 9:40 UTC);
        assert_eq!(
            s.due_day(datetime!(2026-05-10 9:41 UTC)),
            Some(LocalDate::parse("2026-05-10").unwrap())
        );
        s.created_at = datetime!(2026-05-10 10:00 UTC);
        assert_eq!(s.due_day(datetime!(2026-05-10 12:00 UTC)), None);
        assert_eq!(
            s.due_day(datetime!(2026-05-11 9:00 UTC)),
            Some(LocalDate::parse("2026-05-11").unwrap())
        );
        s.enabled = false;
        assert_eq!(s.due_day(datetime!(2026-05-11 9:00 UTC)), None);
    }
}
