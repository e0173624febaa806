//! The one error type of the schedule module.

use std::fmt;

/// The five fields of a crontab(5) schedule, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl Field {
    /// All fields in the order they are written.
    pub const ALL: [Field; 5] = [
        Field::Minute,
        Field::Hour,
        Field::DayOfMonth,
        Field::Month,
        Field::DayOfWeek,
    ];

    /// The name used in messages, e.g. `day-of-month`.
    ///
    /// ```
    /// use guard_core::schedule::Field;
    ///
    /// let f = Field::DayOfWeek;
    /// assert_eq!((f.name(), f.low(), f.high()), ("day-of-week", 0, 7));
    /// assert_eq!(Field::ALL.map(Field::name)[2], "day-of-month");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        }
    }

    /// Smallest value a user may write.
    pub fn low(self) -> u32 {
        match self {
            Field::Minute | Field::Hour | Field::DayOfWeek => 0,
            Field::DayOfMonth | Field::Month => 1,
        }
    }

    /// Largest value a user may write (7 is Sunday in the day-of-week field).
    pub fn high(self) -> u32 {
        match self {
            Field::Minute => 59,
            Field::Hour => 23,
            Field::DayOfMonth => 31,
            Field::Month => 12,
            Field::DayOfWeek => 7,
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// User text (a field, an expression, a zone name, a macro) as quoted in an error message: see
/// [`crate::text::quoted`] (control, invisible and bidi characters escaped, so a NUL or an ESC
/// sequence in the input never reaches an operator's terminal), at most 200 characters.
pub(crate) fn shown(text: &str) -> String {
    crate::text::quoted(text, 200)
}

/// Why a schedule, zone or request was refused.
///
/// `Display` is one line that names the field (or input) at fault, what is wrong with it and
/// what to write instead; the user's text in it is escaped (see `shown`), the fields of the
/// variant keep it as given; [`ScheduleError::reason`] is a stable atom-like tag for programs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Nothing but white space was given.
    #[error("the schedule is empty: give 5 fields (minute hour day-of-month month day-of-week), e.g. \"0 2 * * *\", or a macro such as @daily")]
    Empty,
    /// Neither 5 fields nor a macro (6 and 7 are [`ScheduleError::SecondsField`]).
    #[error("{count} field{s} given: use 5 fields (minute hour day-of-month month day-of-week), e.g. \"0 2 * * *\"", s = if *count == 1 { "" } else { "s" })]
    FieldCount { count: usize },
    /// 6 or 7 fields: a seconds (and maybe year) field, as in Quartz or croner.
    #[error("{count} fields given: schedules have minute resolution, use 5 fields (minute hour day-of-month month day-of-week)")]
    SecondsField { count: usize },
    /// `@reboot`, an unknown `@word`, or a macro followed by more text.
    #[error("{detail}")]
    UnsupportedMacro { detail: String },
    /// A value (or step) outside the field's range.
    #[error("{field} field \"{}\": {detail}", shown(text))]
    OutOfRange {
        field: Field,
        text: String,
        detail: String,
    },
    /// `a-b` with `a > b`.
    #[error(
        "{field} field \"{}\": range {lo}-{hi} runs backwards; {hint}",
        shown(text)
    )]
    ReversedRange {
        field: Field,
        text: String,
        lo: u32,
        hi: u32,
        hint: String,
    },
    /// `*/0`.
    #[error(
        "{field} field \"{}\": a step of 0 never advances, use a step of at least 1 (e.g. */5)",
        shown(text)
    )]
    ZeroStep { field: Field, text: String },
    /// A character or word that crontab(5) does not know.
    #[error("{field} field \"{}\": {detail}", shown(text))]
    BadChar {
        field: Field,
        text: String,
        detail: String,
    },
    /// `?`, `L`, `W` or `#`: Quartz/croner extensions that crontab(5) lacks.
    #[error("{field} field \"{}\": {detail}", shown(text))]
    QuartzSyntax {
        field: Field,
        text: String,
        detail: String,
    },
    /// A well-formed schedule that matches no date at all.
    #[error("\"{}\" can never fire: {detail}", shown(expr))]
    NeverFires { expr: String, detail: String },
    /// Not an IANA zone name known to chrono-tz, nor `local`.
    #[error("time zone \"{}\" is unknown: use an IANA name such as Europe/Berlin, America/New_York or UTC (case matters), or \"local\"", shown(zone))]
    BadZone { zone: String },
    /// `n` outside 1..=1000.
    #[error("count {count} is out of range: ask for 1 to {max} fire times")]
    BadCount { count: usize, max: usize },
    /// The starting instant cannot be represented in the calendar maths.
    #[error("time {unix_ms} ms is out of range: give a Unix time in milliseconds between the years 1 and 9999")]
    TimeOutOfRange { unix_ms: i64 },
}

impl ScheduleError {
    /// The stable reason tag (the Erlang side turns it into an atom).
    pub fn reason(&self) -> &'static str {
        match self {
            ScheduleError::Empty => "empty",
            ScheduleError::FieldCount { .. } => "field_count",
            ScheduleError::SecondsField { .. } => "seconds_field",
            ScheduleError::UnsupportedMacro { .. } => "unsupported_macro",
            ScheduleError::OutOfRange { .. } | ScheduleError::TimeOutOfRange { .. } => {
                "out_of_range"
            }
            ScheduleError::ReversedRange { .. } => "reversed_range",
            ScheduleError::ZeroStep { .. } => "zero_step",
            ScheduleError::BadChar { .. } => "bad_char",
            ScheduleError::QuartzSyntax { .. } => "quartz_syntax",
            ScheduleError::NeverFires { .. } => "never_fires",
            ScheduleError::BadZone { .. } => "bad_zone",
            ScheduleError::BadCount { .. } => "bad_count",
        }
    }
}
