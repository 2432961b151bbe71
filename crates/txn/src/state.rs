//! The states of a transactional id and the legal transitions between them (Kafka's
//! `TransactionState`).
//!
//! ```text
//!  (new id) ──InitProducerId──► Empty
//!                                 │ AddPartitionsToTxn / AddOffsetsToTxn
//!                                 ▼
//!            ┌─────────────────► Ongoing ──InitProducerId (fencing)──► PrepareEpochFence
//!            │                  │       │                                (in memory only)
//!            │       EndTxn(commit)    EndTxn(abort), timeout                  │
//!            │                  ▼       ▼                                      │
//!            │       PrepareCommit     PrepareAbort ◄──────────────────────────┘
//!            │   markers written│       │markers written
//!            │                  ▼       ▼
//!            │       CompleteCommit    CompleteAbort
//!            │                  │       │
//!            └──────────────────┴───────┘ AddPartitionsToTxn (the next transaction)
//!
//!  Empty, CompleteCommit, CompleteAbort ──InitProducerId──► Empty (epoch + 1, or a new
//!                                                           producer id when exhausted)
//!  Empty, CompleteCommit, CompleteAbort ──transactional.id.expiration.ms──► Dead (tombstone)
//!  Ongoing ──AddPartitionsToTxn──► Ongoing (more partitions)
//!  Empty, CompleteCommit, CompleteAbort ──EndTxn(abort) v5──► PrepareAbort (transactions v2:
//!                                                           no partitions, the epoch bumped)
//!  Ongoing ──timeout, InitProducerId (fencing)──► PrepareAbort at epoch + 1 (one bump in both
//!                                   versions; v2 at an exhausted epoch also takes a new id)
//! ```

/// The state of one transactional id. The discriminants are the `TransactionStatus` byte of
/// Kafka's `__transaction_state` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransactionState {
    /// Has a producer id and epoch, no transaction open.
    Empty = 0,
    /// A transaction is open: partitions (and maybe a group's offsets partition) were added.
    Ongoing = 1,
    /// Commit decided and persisted; markers are being written.
    PrepareCommit = 2,
    /// Abort decided and persisted; markers are being written.
    PrepareAbort = 3,
    /// Every commit marker written.
    CompleteCommit = 4,
    /// Every abort marker written.
    CompleteAbort = 5,
    /// Expired: its tombstone is (being) written and the id is forgotten.
    Dead = 6,
    /// A zombie's open transaction is being fenced: the epoch is bumped before the abort. Kafka
    /// keeps it as a pending state only; it is never written to the log by this crate.
    PrepareEpochFence = 7,
}

impl TransactionState {
    pub const ALL: [TransactionState; 8] = [
        TransactionState::Empty,
        TransactionState::Ongoing,
        TransactionState::PrepareCommit,
        TransactionState::PrepareAbort,
        TransactionState::CompleteCommit,
        TransactionState::CompleteAbort,
        TransactionState::Dead,
        TransactionState::PrepareEpochFence,
    ];

    /// The status byte in a `__transaction_state` value.
    pub fn id(self) -> i8 {
        self as i8
    }

    pub fn from_id(id: i8) -> Option<TransactionState> {
        TransactionState::ALL.into_iter().find(|s| s.id() == id)
    }

    /// Kafka's names (`DescribeTransactions`, `ListTransactions` report these).
    pub fn name(self) -> &'static str {
        match self {
            TransactionState::Empty => "Empty",
            TransactionState::Ongoing => "Ongoing",
            TransactionState::PrepareCommit => "PrepareCommit",
            TransactionState::PrepareAbort => "PrepareAbort",
            TransactionState::CompleteCommit => "CompleteCommit",
            TransactionState::CompleteAbort => "CompleteAbort",
            TransactionState::Dead => "Dead",
            TransactionState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// The states this one may be entered from (Kafka's `validPreviousStates`).
    pub fn valid_previous_states(self) -> &'static [TransactionState] {
        use TransactionState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            // Transactions v2 may abort with no transaction open here (the client cannot know
            // whether its partitions were added): Empty / Complete* → PrepareAbort, no markers.
            PrepareAbort => &[
                Ongoing,
                PrepareEpochFence,
                Empty,
                CompleteCommit,
                CompleteAbort,
            ],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteCommit, CompleteAbort],
            PrepareEpochFence => &[Ongoing],
        }
    }

    /// Whether `self → to` is in the table.
    pub fn can_transition_to(self, to: TransactionState) -> bool {
        to.valid_previous_states().contains(&self)
    }

    /// A transaction is decided and its markers are (being) written.
    pub fn is_prepare(self) -> bool {
        matches!(
            self,
            TransactionState::PrepareCommit | TransactionState::PrepareAbort
        )
    }

    /// No transaction open: a new one may start, the id may expire.
    pub fn is_idle(self) -> bool {
        matches!(
            self,
            TransactionState::Empty
                | TransactionState::CompleteCommit
                | TransactionState::CompleteAbort
        )
    }
}
