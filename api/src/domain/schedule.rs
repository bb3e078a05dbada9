//! When a periodic job runs: `daily HH:MM` (UTC) or `every <duration>` (`every 6h`),
//! as `EVALUATION_SCHEDULE` writes it, and the slots that follow from it.

use chrono::{DateTime, Duration, NaiveTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every day at this time, UTC.
    Daily(NaiveTime),
    /// At this interval, counted from the Unix epoch (so replicas agree on the slots).
    Every(Duration),
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(time) = text.strip_prefix("daily ") {
            let time = NaiveTime::parse_from_str(time.trim(), "%H:%M")
                .map_err(|_| format!("`{text}`: expected `daily HH:MM` (UTC)"))?;
            return Ok(Self::Daily(time));
        }
        if let Some(interval) = text.strip_prefix("every ") {
            let interval =
                humantime::parse_duration(interval.trim()).map_err(|e| format!("`{text}`: {e}"))?;
            let interval = Duration::from_std(interval).map_err(|e| e.to_string())?;
            if interval < Duration::minutes(1) {
                return Err(format!("`{text}`: the interval must be at least a minute"));
            }
            return Ok(Self::Every(interval));
        }
        Err(format!(
            "`{text}`: expected `daily HH:MM` (UTC) or `every <duration>`, e.g. `every 6h`"
        ))
    }

    /// The latest slot at or before `now`.
    pub fn slot_at_or_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match *self {
            Self::Daily(time) => {
                let today = now.date_naive().and_time(time).and_utc();
                if today <= now {
                    today
                } else {
                    today - Duration::days(1)
                }
            }
            Self::Every(interval) => {
                let step = interval.num_seconds().max(60);
                let slot = now.timestamp().div_euclid(step) * step;
                DateTime::from_timestamp(slot, 0).unwrap_or(now)
            }
        }
    }

    /// The first slot after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match *self {
            Self::Daily(_) => self.slot_at_or_before(now) + Duration::days(1),
            Self::Every(interval) => self.slot_at_or_before(now) + interval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn schedules_parse_and_find_their_slots() {
        let daily = Schedule::parse("daily 02:00").unwrap();
        assert_eq!(
            daily.next_after(at("2026-11-23T01:00:00Z")),
            at("2026-11-23T02:00:00Z")
        );
        assert_eq!(
            daily.next_after(at("2026-11-23T02:00:00Z")),
            at("2026-11-24T02:00:00Z")
        );
        let every = Schedule::parse("every 6h").unwrap();
        assert_eq!(
            every.next_after(at("2026-11-23T13:10:00Z")),
            at("2026-11-23T18:00:00Z")
        );
        assert!(Schedule::parse("hourly").is_err());
        assert!(Schedule::parse("daily 25:00").is_err());
        assert!(Schedule::parse("every 10s").is_err());
    }
}
