//! Rollout windows: when publishing may run and how fast, by day of the
//! week and time of day (UTC), with the meaning of Sourcegraph's
//! `batchChanges.rolloutWindows` site setting, so that a configuration
//! carries over.
//!
//! - No setting at all: publishing is never held back.
//! - A setting (even an empty list): publishing runs only inside a window,
//!   at that window's rate; outside every window nothing is published.
//! - Windows that overlap: the last one in the list wins.
//! - A window may not cross midnight (`end` must be after `start`); write
//!   it as two windows, one ending at `24:00` and one starting at `00:00`.
//!
//! Everything here is a pure function of the time given, so the caller's
//! clock decides (and tests pass explicit times).

use std::time::Duration;

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};

/// How fast publishing may go inside a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// No limit (`unlimited`).
    Unlimited,
    /// Nothing is published (`0`).
    Paused,
    /// One changeset per interval (`N/hour` is one every `3600/N` seconds):
    /// publishing is spread evenly, not bursts of N at the top of the hour.
    Every(Duration),
}

/// What publishing may do at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Publish without waiting.
    Unlimited,
    /// Publish one changeset per interval.
    Every(Duration),
    /// Publish nothing now: no window is open, or the one that applies is
    /// paused. `opens_at` is the next moment publishing may resume, if that
    /// is within [`LOOKAHEAD_DAYS`]; `None` if it never will (every window
    /// is paused, or there is none).
    Closed { opens_at: Option<DateTime<Utc>> },
}

/// How far ahead [`Decision::Closed::opens_at`] is looked for: the week
/// repeats, so anything that ever opens does so within eight days.
pub const LOOKAHEAD_DAYS: i64 = 8;

const MINUTES_PER_DAY: u16 = 24 * 60;

/// A window's setting that cannot be used: which field (`rate`, `days[2]`,
/// `start`, `end`) and why. The caller names the window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct WindowError {
    pub field: String,
    pub message: String,
}

impl WindowError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One window: a rate, on some days of the week, between two times of day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutWindow {
    rate: Rate,
    /// Indexed by days from Monday; all true when no days are given.
    days: [bool; 7],
    /// Minutes after midnight UTC, start included, end excluded (end may
    /// be 1440, midnight at the end of the day); `None`: the whole day.
    minutes: Option<(u16, u16)>,
}

impl RolloutWindow {
    /// Parses a window as written in the configuration: `rate` is
    /// `unlimited`, `0` or `N/second|minute|hour`; `days` English day names
    /// or their three-letter forms, any case (none: every day); `start`
    /// and `end` `HH:MM` in UTC, both or neither.
    pub fn parse(
        rate: &str,
        days: &[String],
        start: Option<&str>,
        end: Option<&str>,
    ) -> Result<Self, WindowError> {
        let rate = parse_rate(rate).ok_or_else(|| {
            WindowError::new(
                "rate",
                format!("{rate:?} is not a rate (use unlimited, 0, or N/second|minute|hour)"),
            )
        })?;
        let days = if days.is_empty() {
            [true; 7]
        } else {
            let mut set = [false; 7];
            for (index, day) in days.iter().enumerate() {
                let from_monday = parse_day(day).ok_or_else(|| {
                    WindowError::new(
                        format!("days[{index}]"),
                        format!(
                            "{day:?} is not a day of the week (use monday … sunday, or mon … sun)"
                        ),
                    )
                })?;
                set[from_monday] = true;
            }
            set
        };
        let minutes = match (start, end) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(WindowError::new(
                    "end",
                    "is missing: give start and end together, or neither",
                ));
            }
            (None, Some(_)) => {
                return Err(WindowError::new(
                    "start",
                    "is missing: give start and end together, or neither",
                ));
            }
            (Some(start), Some(end)) => {
                let from = parse_time(start)
                    .filter(|&minutes| minutes < MINUTES_PER_DAY)
                    .ok_or_else(|| WindowError::new("start", not_a_time(start)))?;
                let to = parse_time(end).ok_or_else(|| WindowError::new("end", not_a_time(end)))?;
                if to <= from {
                    return Err(WindowError::new(
                        "end",
                        format!(
                            "{end:?} is not after start {start:?}; a window cannot cross midnight: \
                             split it into one ending at 24:00 and one starting at 00:00"
                        ),
                    ));
                }
                Some((from, to))
            }
        };
        Ok(Self {
            rate,
            days,
            minutes,
        })
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Whether this window applies at `at`.
    fn covers(&self, at: DateTime<Utc>) -> bool {
        let day = at.weekday().num_days_from_monday() as usize;
        let Some(&on_day) = self.days.get(day) else {
            return false;
        };
        let minute = u16::try_from(at.hour() * 60 + at.minute()).unwrap_or(u16::MAX);
        on_day
            && self
                .minutes
                .is_none_or(|(from, to)| from <= minute && minute < to)
    }
}

fn not_a_time(text: &str) -> String {
    format!("{text:?} is not a time of day (use HH:MM in UTC, 00:00 to 23:59; 24:00 as an end)")
}

/// The rollout setting: none (publishing never held back) or a list of
/// windows. The default is no setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutWindows {
    windows: Option<Vec<RolloutWindow>>,
}

impl RolloutWindows {
    /// A setting made of these windows; an empty list publishes nothing.
    pub fn new(windows: Vec<RolloutWindow>) -> Self {
        Self {
            windows: Some(windows),
        }
    }

    /// Whether rollout windows are configured at all.
    pub fn is_set(&self) -> bool {
        self.windows.is_some()
    }

    /// What publishing may do at `now`.
    pub fn rate_at(&self, now: DateTime<Utc>) -> Decision {
        let Some(windows) = &self.windows else {
            return Decision::Unlimited;
        };
        match applying(windows, now) {
            Some(Rate::Unlimited) => Decision::Unlimited,
            Some(Rate::Every(interval)) => Decision::Every(interval),
            Some(Rate::Paused) | None => Decision::Closed {
                opens_at: next_opening(windows, now),
            },
        }
    }
}

/// The rate of the last window covering `at`, if any covers it.
fn applying(windows: &[RolloutWindow], at: DateTime<Utc>) -> Option<Rate> {
    windows
        .iter()
        .rev()
        .find(|window| window.covers(at))
        .map(|window| window.rate)
}

/// The first moment after `now`, within [`LOOKAHEAD_DAYS`], at which a
/// window with a non-zero rate applies. What applies changes only at a
/// window's start or end or at midnight (days), so only those moments
/// need checking, in order.
fn next_opening(windows: &[RolloutWindow], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let today = now.date_naive().and_time(chrono::NaiveTime::MIN).and_utc();
    let horizon = now + TimeDelta::days(LOOKAHEAD_DAYS);
    let mut moments: Vec<DateTime<Utc>> = Vec::new();
    for day in 0..=LOOKAHEAD_DAYS {
        let midnight = today + TimeDelta::days(day);
        moments.push(midnight);
        for (from, to) in windows.iter().filter_map(|window| window.minutes) {
            moments.push(midnight + TimeDelta::minutes(i64::from(from)));
            moments.push(midnight + TimeDelta::minutes(i64::from(to)));
        }
    }
    moments.retain(|moment| *moment > now && *moment <= horizon);
    moments.sort_unstable();
    moments.into_iter().find(|&moment| {
        matches!(
            applying(windows, moment),
            Some(Rate::Unlimited | Rate::Every(_))
        )
    })
}

/// `unlimited`, `0` (paused), or `N/second|minute|hour`; `0/hour` pauses
/// too. A rate too fast to space out (under a nanosecond) is unlimited.
fn parse_rate(text: &str) -> Option<Rate> {
    let text = text.trim().to_ascii_lowercase();
    if text == "unlimited" {
        return Some(Rate::Unlimited);
    }
    if text == "0" {
        return Some(Rate::Paused);
    }
    let (count, unit) = text.split_once('/')?;
    let seconds = match unit.trim() {
        "second" => 1,
        "minute" => 60,
        "hour" => 3600,
        _ => return None,
    };
    let count = count.trim();
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let count: u32 = count.parse().ok()?;
    if count == 0 {
        return Some(Rate::Paused);
    }
    let interval = Duration::from_secs(seconds) / count;
    Some(if interval.is_zero() {
        Rate::Unlimited
    } else {
        Rate::Every(interval)
    })
}

/// Days from Monday for an English day name or its three-letter form.
fn parse_day(text: &str) -> Option<usize> {
    const DAYS: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let text = text.trim().to_ascii_lowercase();
    DAYS.iter()
        .position(|day| *day == text || (text.len() == 3 && day.starts_with(&text)))
}

/// `HH:MM` as minutes after midnight, `24:00` (1440) included.
fn parse_time(text: &str) -> Option<u16> {
    let (hours, minutes) = text.trim().split_once(':')?;
    let digits = |part: &str, most: usize| {
        (!part.is_empty() && part.len() <= most && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<u16>().ok())
            .flatten()
    };
    let hours = digits(hours, 2)?;
    let minutes = digits(minutes, 2).filter(|_| minutes.len() == 2)?;
    match (hours, minutes) {
        (0..=23, 0..=59) => Some(hours * 60 + minutes),
        (24, 0) => Some(MINUTES_PER_DAY),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// 2024-06-01 is a Saturday; 2024-06-03 a Monday.
    fn at(day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, day, hour, minute, 0)
            .single()
            .unwrap()
    }

    fn window(rate: &str, days: &[&str], hours: Option<(&str, &str)>) -> RolloutWindow {
        let days: Vec<String> = days.iter().map(|d| (*d).to_owned()).collect();
        RolloutWindow::parse(rate, &days, hours.map(|h| h.0), hours.map(|h| h.1)).unwrap()
    }

    const WEEKDAYS: [&str; 5] = ["monday", "tuesday", "wednesday", "thursday", "friday"];

    #[test]
    fn no_setting_is_always_unlimited_and_an_empty_one_never_opens() {
        assert_eq!(
            RolloutWindows::default().rate_at(at(1, 3, 0)),
            Decision::Unlimited
        );
        assert!(!RolloutWindows::default().is_set());
        let empty = RolloutWindows::new(Vec::new());
        assert!(empty.is_set());
        assert_eq!(
            empty.rate_at(at(3, 12, 0)),
            Decision::Closed { opens_at: None }
        );
    }

    #[test]
    fn a_weekday_window_is_closed_on_saturday_until_monday() {
        let all_day = RolloutWindows::new(vec![window("unlimited", &WEEKDAYS, None)]);
        assert_eq!(
            all_day.rate_at(at(1, 10, 0)),
            Decision::Closed {
                opens_at: Some(at(3, 0, 0))
            }
        );
        assert_eq!(all_day.rate_at(at(3, 0, 0)), Decision::Unlimited);

        let office =
            RolloutWindows::new(vec![window("10/hour", &WEEKDAYS, Some(("08:00", "16:00")))]);
        assert_eq!(
            office.rate_at(at(1, 10, 0)),
            Decision::Closed {
                opens_at: Some(at(3, 8, 0))
            }
        );
        // The start is included, the end is not.
        assert_eq!(
            office.rate_at(at(3, 7, 59)),
            Decision::Closed {
                opens_at: Some(at(3, 8, 0))
            }
        );
        assert_eq!(
            office.rate_at(at(3, 8, 0)),
            Decision::Every(Duration::from_secs(360))
        );
        assert_eq!(
            office.rate_at(at(3, 16, 0)),
            Decision::Closed {
                opens_at: Some(at(4, 8, 0))
            }
        );
        // Friday evening: next is Monday.
        assert_eq!(
            office.rate_at(at(7, 18, 30)),
            Decision::Closed {
                opens_at: Some(at(10, 8, 0))
            }
        );
    }

    #[test]
    fn a_window_once_a_week_is_found_a_week_ahead() {
        let mondays =
            RolloutWindows::new(vec![window("1/minute", &["mon"], Some(("08:00", "09:00")))]);
        assert_eq!(
            mondays.rate_at(at(3, 10, 0)),
            Decision::Closed {
                opens_at: Some(at(10, 8, 0))
            }
        );
    }

    #[test]
    fn the_last_matching_window_wins() {
        let throttled_office_hours = RolloutWindows::new(vec![
            window("unlimited", &[], None),
            window("3/minute", &WEEKDAYS, Some(("08:00", "16:00"))),
        ]);
        assert_eq!(
            throttled_office_hours.rate_at(at(3, 9, 0)),
            Decision::Every(Duration::from_secs(20))
        );
        assert_eq!(
            throttled_office_hours.rate_at(at(3, 17, 0)),
            Decision::Unlimited
        );
        assert_eq!(
            throttled_office_hours.rate_at(at(1, 9, 0)),
            Decision::Unlimited
        );
        // The same windows the other way round: the catch-all hides the rest.
        let reversed = RolloutWindows::new(vec![
            window("3/minute", &WEEKDAYS, Some(("08:00", "16:00"))),
            window("unlimited", &[], None),
        ]);
        assert_eq!(reversed.rate_at(at(3, 9, 0)), Decision::Unlimited);
    }

    #[test]
    fn a_zero_rate_pauses_until_a_later_window_opens() {
        let no_weekends = RolloutWindows::new(vec![
            window("unlimited", &[], None),
            window("0", &["Saturday", "SUN"], None),
        ]);
        assert_eq!(
            no_weekends.rate_at(at(1, 12, 0)),
            Decision::Closed {
                opens_at: Some(at(3, 0, 0))
            }
        );
        // A pause inside a window: it resumes when the pause ends.
        let lunch = RolloutWindows::new(vec![
            window("10/hour", &WEEKDAYS, Some(("08:00", "16:00"))),
            window("0/hour", &[], Some(("12:00", "13:00"))),
        ]);
        assert_eq!(
            lunch.rate_at(at(3, 12, 30)),
            Decision::Closed {
                opens_at: Some(at(3, 13, 0))
            }
        );
        // Only paused windows: nothing ever opens.
        let stopped = RolloutWindows::new(vec![window("0", &[], None)]);
        assert_eq!(
            stopped.rate_at(at(3, 12, 0)),
            Decision::Closed { opens_at: None }
        );
    }

    #[test]
    fn windows_end_at_midnight_and_a_night_is_two_windows() {
        let nights = RolloutWindows::new(vec![
            window("1/second", &[], Some(("22:00", "24:00"))),
            window("1/second", &[], Some(("00:00", "06:00"))),
        ]);
        let every_second = Decision::Every(Duration::from_secs(1));
        assert_eq!(nights.rate_at(at(3, 23, 59)), every_second);
        assert_eq!(nights.rate_at(at(4, 0, 0)), every_second);
        assert_eq!(nights.rate_at(at(4, 5, 59)), every_second);
        assert_eq!(
            nights.rate_at(at(4, 6, 0)),
            Decision::Closed {
                opens_at: Some(at(4, 22, 0))
            }
        );
        let crossing = RolloutWindow::parse("1/second", &[], Some("22:00"), Some("06:00"));
        let error = crossing.unwrap_err();
        assert_eq!(error.field, "end");
        assert!(error.message.contains("cannot cross midnight"), "{error}");
    }

    #[test]
    fn rates_are_spread_evenly() {
        let rate = |text: &str| parse_rate(text);
        assert_eq!(rate("10/hour"), Some(Rate::Every(Duration::from_secs(360))));
        assert_eq!(
            rate("2/second"),
            Some(Rate::Every(Duration::from_millis(500)))
        );
        assert_eq!(
            rate(" 5/Minute "),
            Some(Rate::Every(Duration::from_secs(12)))
        );
        assert_eq!(rate("UNLIMITED"), Some(Rate::Unlimited));
        assert_eq!(rate("0"), Some(Rate::Paused));
        assert_eq!(rate("0/minute"), Some(Rate::Paused));
        assert_eq!(rate("4000000000/second"), Some(Rate::Unlimited));
        for bad in [
            "10/fortnight",
            "ten/hour",
            "-1/hour",
            "1.5/hour",
            "/hour",
            "1/",
            "10",
            "",
            "99999999999/hour",
        ] {
            assert_eq!(rate(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_windows_name_the_field() {
        let error = |rate: &str, days: &[&str], start: Option<&str>, end: Option<&str>| {
            let days: Vec<String> = days.iter().map(|d| (*d).to_owned()).collect();
            RolloutWindow::parse(rate, &days, start, end)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error("10/fortnight", &[], None, None),
            "rate: \"10/fortnight\" is not a rate (use unlimited, 0, or N/second|minute|hour)"
        );
        assert!(
            error("1/hour", &["mon", "funday"], None, None)
                .starts_with("days[1]: \"funday\" is not a day of the week")
        );
        assert!(error("1/hour", &[], Some("08:00"), None).starts_with("end: is missing"));
        assert!(error("1/hour", &[], None, Some("08:00")).starts_with("start: is missing"));
        for bad in ["25:00", "8:60", "8", "08:0", "24:00", "ab:cd", "-1:00"] {
            assert!(
                error("1/hour", &[], Some(bad), Some("24:00"))
                    .starts_with(&format!("start: {bad:?} is not a time of day")),
                "{bad}"
            );
        }
        assert!(
            error("1/hour", &[], Some("08:00"), Some("08:00"))
                .starts_with("end: \"08:00\" is not after")
        );
        // Accepted forms: one-digit hours, three-letter days in any case.
        assert!(
            RolloutWindow::parse("1/hour", &["TUE".to_owned()], Some("8:00"), Some("17:30"))
                .is_ok()
        );
    }
}
