//! What a submission was for, packed into its 64-bit `user_data`.
//!
//! Layout: bits 56..64 the kind, bits 32..56 a 24-bit generation (watches only, so a late
//! completion of a removed watch is not taken for its successor), bits 0..32 an index.

/// The meaning of one SQE/CQE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    /// Multishot RECVMSG on socket `sock`.
    Recv { sock: u16 },
    /// A SENDMSG whose first tx slot is `head`.
    Send { head: u32 },
    /// Multishot POLL_ADD for watch slot `slot` at generation `generation`.
    Watch { slot: u32, generation: u32 },
    /// A POLL_REMOVE or cancellation whose own completion carries nothing.
    Cancel,
}

const KIND_RECV: u64 = 1;
const KIND_SEND: u64 = 2;
const KIND_WATCH: u64 = 3;
const KIND_CANCEL: u64 = 4;
/// Generations wrap at 24 bits.
pub(crate) const GENERATION_MASK: u32 = (1 << 24) - 1;

impl Token {
    /// Packs the token into a `user_data` value.
    pub(crate) fn encode(self) -> u64 {
        match self {
            Token::Recv { sock } => (KIND_RECV << 56) | u64::from(sock),
            Token::Send { head } => (KIND_SEND << 56) | u64::from(head),
            Token::Watch { slot, generation } => {
                (KIND_WATCH << 56)
                    | (u64::from(generation & GENERATION_MASK) << 32)
                    | u64::from(slot)
            }
            Token::Cancel => KIND_CANCEL << 56,
        }
    }

    /// Unpacks a `user_data` value; `None` for anything this driver never submitted.
    pub(crate) fn decode(user_data: u64) -> Option<Token> {
        let index = (user_data & u64::from(u32::MAX)) as u32;
        let generation = ((user_data >> 32) as u32) & GENERATION_MASK;
        match user_data >> 56 {
            KIND_RECV if generation == 0 => {
                u16::try_from(index).ok().map(|sock| Token::Recv { sock })
            }
            KIND_SEND if generation == 0 => Some(Token::Send { head: index }),
            KIND_WATCH => Some(Token::Watch {
                slot: index,
                generation,
            }),
            KIND_CANCEL if user_data == KIND_CANCEL << 56 => Some(Token::Cancel),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests unwrap to fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let tokens = [
            Token::Recv { sock: 0 },
            Token::Recv { sock: u16::MAX },
            Token::Send { head: 0 },
            Token::Send { head: u32::MAX },
            Token::Watch {
                slot: 7,
                generation: 0,
            },
            Token::Watch {
                slot: u32::MAX,
                generation: GENERATION_MASK,
            },
            Token::Cancel,
        ];
        for t in tokens {
            assert_eq!(Token::decode(t.encode()), Some(t), "{t:?}");
        }
    }

    #[test]
    fn kinds_do_not_collide_and_junk_is_rejected() {
        assert_ne!(
            Token::Recv { sock: 1 }.encode(),
            Token::Send { head: 1 }.encode()
        );
        assert_eq!(Token::decode(0), None);
        assert_eq!(Token::decode(u64::MAX), None);
        assert_eq!(
            Token::decode((1 << 56) | (1 << 16)),
            None,
            "socket index above u16"
        );
        assert_eq!(Token::decode((4 << 56) | 1), None);
    }
}
