//! The transparency log's mathematics, pure and apart from where hashes are
//! kept and who appends: the Merkle tree of RFC 6962 / RFC 9162 ([`tree`])
//! and C2SP signed notes for checkpoints ([`note`]). Nothing here does I/O;
//! the store keeps the hashes and the log's sequencer appends.

pub mod note;
pub mod tree;
