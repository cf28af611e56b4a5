//! Identifiers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A room's id: a server-made UUID v4, rendered hyphenated (join.cloud's shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomId(pub Uuid);

impl RoomId {
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for RoomId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// A member's identity inside one room. Names can be reused after someone leaves, so
/// DMs and cursors refer to the member id, never to the display name: a newcomer who
/// takes a departed agent's name does not inherit its private messages.
/// [`MemberId::BOT`] (0) is the room-bot.
///
/// No `Default`: a zero member id is the room-bot, never a harmless placeholder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberId(u64);

/// Position of a message in its room's log: gapless, strictly increasing, from 1
/// ([`Seq::ZERO`]: before the first message).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Seq(u64);

/// What the two number-like ids share: made from and read as a `u64` (the store's and
/// the wire's representation), printed as the number, compared with plain numbers.
macro_rules! number_id {
    ($t:ident) => {
        impl $t {
            /// From its number as the wire, a store or a test writes it.
            pub const fn new(n: u64) -> Self {
                Self(n)
            }

            /// Its number, for the wire, a store or a log field: not for arithmetic.
            pub const fn get(self) -> u64 {
                self.0
            }

            /// The one after this one.
            pub const fn next(self) -> Self {
                Self(self.0 + 1)
            }
        }

        impl From<u64> for $t {
            fn from(n: u64) -> Self {
                Self(n)
            }
        }

        impl From<$t> for u64 {
            fn from(id: $t) -> u64 {
                id.0
            }
        }

        /// For SQL integers (signed 64-bit): fails past `i64::MAX`.
        impl TryFrom<$t> for i64 {
            type Error = std::num::TryFromIntError;
            fn try_from(id: $t) -> Result<i64, Self::Error> {
                i64::try_from(id.0)
            }
        }

        impl PartialEq<u64> for $t {
            fn eq(&self, other: &u64) -> bool {
                self.0 == *other
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $t {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }
    };
}

number_id!(MemberId);
number_id!(Seq);

impl MemberId {
    /// The room-bot, sender of the room's notices.
    pub const BOT: MemberId = MemberId(0);

    /// The room's creator, the first to join it.
    pub const FIRST: MemberId = MemberId(1);
}

impl Seq {
    /// Before the first message: a cursor that has seen nothing.
    pub const ZERO: Seq = Seq(0);

    /// Past any message: as a bound, "to the end of the log".
    pub const MAX: Seq = Seq(u64::MAX);

    /// `n` places after this one.
    pub const fn plus(self, n: u64) -> Seq {
        Seq(self.0 + n)
    }

    /// `n` places before this one, stopping at [`Seq::ZERO`].
    pub const fn minus(self, n: u64) -> Seq {
        Seq(self.0.saturating_sub(n))
    }

    /// How many places this one is after `earlier` (0 when it is not after it).
    pub const fn since(self, earlier: Seq) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ids_are_plain_numbers_on_the_wire() {
        let pair = (MemberId::new(7), Seq::new(42));
        let json = serde_json::to_string(&pair).unwrap();
        assert_eq!(json, "[7,42]");
        assert_eq!(
            serde_json::from_str::<(MemberId, Seq)>(&json).unwrap(),
            pair
        );
        assert!(
            serde_json::from_str::<Seq>("\"42\"").is_err(),
            "a string is not a seq"
        );
        assert!(
            serde_json::from_str::<Seq>("-1").is_err(),
            "a seq is never negative"
        );
    }

    #[test]
    fn seqs_order_and_step_as_their_numbers() {
        assert!(Seq::ZERO < Seq::new(1));
        assert!(Seq::new(9) < Seq::new(10));
        assert_eq!(Seq::ZERO.next(), Seq::new(1));
        assert_eq!(Seq::new(3).plus(4), Seq::new(7));
        assert_eq!(Seq::new(3).minus(5), Seq::ZERO);
        assert_eq!(Seq::new(7).since(Seq::new(3)), 4);
        assert_eq!(Seq::new(3).since(Seq::new(7)), 0);
        assert_eq!(MemberId::BOT.next(), MemberId::FIRST);
        assert!(MemberId::FIRST < MemberId::new(2));
    }

    #[test]
    fn ids_print_and_parse_as_their_numbers() {
        assert_eq!(Seq::new(12).to_string(), "12");
        assert_eq!(MemberId::new(3).to_string(), "3");
        assert_eq!("12".parse::<Seq>().unwrap(), Seq::new(12));
        assert!("x".parse::<Seq>().is_err());
        assert!("-1".parse::<MemberId>().is_err());
    }
}
