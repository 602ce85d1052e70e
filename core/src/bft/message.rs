//! The wire messages of PBFT and their canonical encodings.
//!
//! Everything a replica receives is decoded with [`crate::codec::decode`]
//! (bounded, total on hostile bytes) and then authenticated; nothing here
//! trusts a field it has not checked. Normal-case votes are authenticated
//! over a short fixed-layout payload ([`Vote::payload`]) in which a digest
//! stands for the batch; signed messages ([`Signed`]) carry their body as
//! the exact bytes that were signed, so checking never depends on
//! re-encoding.
//!
//! Not here: what a replica does with a message (see `replica`).

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::auth::{Auth, Identity, Sig, Tag};
use super::clients::ClientTable;
use super::digest::{Digest, Hasher};
use super::{ClientId, ReplicaIndex, Seq, View};
use crate::codec::{self, DecodeError};

/// A client's operation, with the timestamp that makes it execute once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Who asks.
    pub client: ClientId,
    /// Strictly increasing per client; a request executes at most once.
    pub timestamp: u64,
    /// The opaque operation.
    pub op: Vec<u8>,
}

impl Request {
    /// The digest the MACs and batch digests cover.
    pub fn digest(&self) -> Digest {
        let mut h = Hasher::new(b"neuroplex-bft/request");
        h.u64(self.client).u64(self.timestamp).part(&self.op);
        h.finish()
    }
}

/// A request with one MAC per replica, computed by the client: a primary
/// cannot invent a request, because each backup checks its own tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    /// The request.
    pub request: Request,
    /// `macs[i]`: the tag for replica i over [`Request::digest`].
    pub macs: Vec<Tag>,
}

/// The requests the primary orders at one sequence number (empty: the null
/// request a new view uses to fill a gap).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The requests, in execution order.
    pub requests: Vec<AuthRequest>,
}

impl Batch {
    /// The digest of a batch whose requests have these digests.
    pub fn digest_of(request_digests: impl IntoIterator<Item = Digest>) -> Digest {
        let mut h = Hasher::new(b"neuroplex-bft/batch");
        for d in request_digests {
            h.part(&d.0);
        }
        h.finish()
    }

    /// The batch digest (hashes every request).
    pub fn digest(&self) -> Digest {
        Self::digest_of(self.requests.iter().map(|r| r.request.digest()))
    }
}

/// Which normal-case vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum VoteKind {
    /// The primary's proposal.
    PrePrepare,
    /// A backup accepted the proposal.
    Prepare,
    /// The replica saw it prepared.
    Commit,
}

/// The fields of a pre-prepare, prepare or commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The view.
    pub view: View,
    /// The sequence number.
    pub seq: Seq,
    /// The batch digest.
    pub digest: Digest,
    /// Who votes (claimed: only the authenticator proves it).
    pub replica: ReplicaIndex,
}

/// Length of [`Vote::payload`].
pub const VOTE_PAYLOAD: usize = 1 + 8 + 8 + 32 + 4;

impl Vote {
    /// The bytes the authenticator covers.
    pub fn payload(&self, kind: VoteKind) -> [u8; VOTE_PAYLOAD] {
        let mut p = [0; VOTE_PAYLOAD];
        p[0] = match kind {
            VoteKind::PrePrepare => 1,
            VoteKind::Prepare => 2,
            VoteKind::Commit => 3,
        };
        p[1..9].copy_from_slice(&self.view.to_le_bytes());
        p[9..17].copy_from_slice(&self.seq.to_le_bytes());
        p[17..49].copy_from_slice(&self.digest.0);
        p[49..53].copy_from_slice(&self.replica.to_le_bytes());
        p
    }
}

/// A pre-prepare: the primary's vote plus the batch it names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrePrepare {
    /// view, seq, batch digest, primary.
    pub vote: Vote,
    /// The primary's authenticator over the vote.
    pub auth: Auth,
    /// The batch.
    pub batch: Batch,
}

/// A prepare or commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voted {
    /// The vote.
    pub vote: Vote,
    /// The voter's authenticator over it.
    pub auth: Auth,
}

/// What a signed body is (domain separation for signatures).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignedKind {
    /// A [`CheckpointVote`].
    Checkpoint,
    /// A [`ViewChange`].
    ViewChange,
    /// A [`NewView`].
    NewView,
}

impl SignedKind {
    fn domain(self) -> &'static [u8] {
        match self {
            SignedKind::Checkpoint => b"neuroplex-bft/checkpoint\0",
            SignedKind::ViewChange => b"neuroplex-bft/view-change",
            SignedKind::NewView => b"neuroplex-bft/new-view\0\0\0",
        }
    }
}

/// A body signed by a replica with ed25519, in every authentication mode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// Who signed (claimed until the signature is checked).
    pub signer: ReplicaIndex,
    /// The encoded body, exactly as signed.
    pub body: Vec<u8>,
    /// The signature over the kind's domain and `body`.
    pub sig: Sig,
}

impl Signed {
    fn signing_bytes(kind: SignedKind, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(32 + body.len());
        m.extend_from_slice(kind.domain());
        m.extend_from_slice(body);
        m
    }

    /// Encodes and signs `body` as `id`.
    pub fn sign<T: Serialize>(id: &Identity, kind: SignedKind, body: &T) -> Signed {
        let body = codec::encode(body).unwrap_or_default();
        let sig = id.sign(&Self::signing_bytes(kind, &body));
        Signed {
            signer: id.me(),
            body,
            sig,
        }
    }

    /// True if the signature is the signer's.
    pub fn verify(&self, id: &Identity, kind: SignedKind) -> bool {
        id.check(
            self.signer,
            &Self::signing_bytes(kind, &self.body),
            &self.sig,
        )
    }

    /// Checks the signature, then decodes the body.
    pub fn open<'a, T: Deserialize<'a>>(
        &'a self,
        id: &Identity,
        kind: SignedKind,
    ) -> Result<T, OpenError> {
        if !self.verify(id, kind) {
            return Err(OpenError::BadSignature);
        }
        codec::decode(&self.body).map_err(OpenError::Malformed)
    }

    /// Checks the signature against bare public keys (for third parties).
    pub fn verify_with(&self, public: &[ed25519_dalek::VerifyingKey], kind: SignedKind) -> bool {
        super::auth::ed25519_check(
            public,
            self.signer,
            &Self::signing_bytes(kind, &self.body),
            &self.sig,
        )
    }
}

/// Why a [`Signed`] did not open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The signature is not the claimed signer's.
    BadSignature,
    /// Signed, but the body does not decode.
    Malformed(DecodeError),
}

/// "My state after executing `seq` has digest `digest`" (signed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointVote {
    /// The sequence number.
    pub seq: Seq,
    /// The checkpoint digest ([`CheckpointData::digest`]).
    pub digest: Digest,
}

/// The state at a checkpoint: the application's snapshot and digest, and
/// the replica's own exactly-once table. What state transfer ships.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointData {
    /// The last sequence number executed into this state.
    pub seq: Seq,
    /// The application's digest of its state.
    pub app_digest: Digest,
    /// The application's snapshot (must be canonical: equal states, equal
    /// bytes).
    pub snapshot: Vec<u8>,
    /// Which requests have executed, and their cached replies.
    pub clients: ClientTable,
}

impl CheckpointData {
    /// The digest replicas vote on: binds the sequence number, the
    /// application digest, the snapshot bytes and the client table, so a
    /// transferred snapshot can be checked without trusting its sender.
    pub fn digest(&self) -> Digest {
        let table = codec::encode(&self.clients).unwrap_or_default();
        let mut h = Hasher::new(b"neuroplex-bft/checkpoint-state");
        h.u64(self.seq)
            .part(&self.app_digest.0)
            .part(&Digest::of(b"neuroplex-bft/snapshot", &[&self.snapshot]).0)
            .part(&table);
        h.finish()
    }
}

/// A view-change message (signed): what the sender knows, for the new
/// primary to decide what survives (Castro & Liskov, TOCS 2002, §4.5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChange {
    /// The view the sender moves to.
    pub view: View,
    /// The sender's low watermark (its stable checkpoint).
    pub low: Seq,
    /// C: checkpoints the sender computed itself, at or above `low`.
    pub checkpoints: Vec<(Seq, Digest)>,
    /// P: for each sequence number, the batch that prepared at the sender
    /// in the highest view: (seq, view, digest). Sorted by seq, one each.
    pub prepared: Vec<(Seq, View, Digest)>,
    /// Q: batches that pre-prepared at the sender: (seq, view, digest),
    /// the latest view for each digest. Sorted.
    pub preprepared: Vec<(Seq, View, Digest)>,
    /// The batches named in P and Q that the sender holds (checked by
    /// digest, so unauthenticated).
    pub batches: Vec<Batch>,
}

/// A new-view message (signed by the new primary): the view-change messages
/// it decided from. Every replica recomputes the decision from them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewView {
    /// The new view.
    pub view: View,
    /// At least 2f+1 signed view changes for `view`, one per replica.
    pub view_changes: Vec<Signed>,
}

/// A replica's progress, broadcast periodically so that peers resend what
/// it misses (lost messages, a new view, a stable checkpoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Who.
    pub replica: ReplicaIndex,
    /// Its view (the target view while changing).
    pub view: View,
    /// False while it is changing views.
    pub normal: bool,
    /// The last sequence number it executed.
    pub executed: Seq,
    /// Its low watermark.
    pub low: Seq,
}

impl Status {
    /// The bytes the authenticator covers.
    pub fn payload(&self) -> [u8; 30] {
        let mut p = [0; 30];
        p[0] = 10;
        p[1..5].copy_from_slice(&self.replica.to_le_bytes());
        p[5..13].copy_from_slice(&self.view.to_le_bytes());
        p[13] = u8::from(self.normal);
        p[14..22].copy_from_slice(&self.executed.to_le_bytes());
        p[22..30].copy_from_slice(&self.low.to_le_bytes());
        p
    }
}

/// A request for the state at a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetch {
    /// Who asks.
    pub replica: ReplicaIndex,
    /// The checkpoint's sequence number.
    pub seq: Seq,
    /// Its certified digest.
    pub digest: Digest,
}

impl Fetch {
    /// The bytes the authenticator covers.
    pub fn payload(&self) -> [u8; 45] {
        let mut p = [0; 45];
        p[0] = 11;
        p[1..5].copy_from_slice(&self.replica.to_le_bytes());
        p[5..13].copy_from_slice(&self.seq.to_le_bytes());
        p[13..45].copy_from_slice(&self.digest.0);
        p
    }
}

/// A replica's answer to a client, MAC'd with their shared key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The replica's view (tells the client who the primary is).
    pub view: View,
    /// The client.
    pub client: ClientId,
    /// The request's timestamp.
    pub timestamp: u64,
    /// Who answers.
    pub replica: ReplicaIndex,
    /// The application's result.
    pub result: Vec<u8>,
    /// Tag over [`Reply::payload`].
    pub mac: Tag,
}

impl Reply {
    /// The bytes the MAC covers.
    pub fn payload(
        view: View,
        client: ClientId,
        timestamp: u64,
        replica: ReplicaIndex,
        result: &[u8],
    ) -> Vec<u8> {
        // MAC'd directly (no digest first): results are usually short, and
        // HMAC hashes a long one anyway.
        let mut p = Vec::with_capacity(29 + result.len());
        p.push(12);
        p.extend_from_slice(&view.to_le_bytes());
        p.extend_from_slice(&client.to_le_bytes());
        p.extend_from_slice(&timestamp.to_le_bytes());
        p.extend_from_slice(&replica.to_le_bytes());
        p.extend_from_slice(result);
        p
    }
}

/// Every message of the protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Client → replicas.
    Request(AuthRequest),
    /// Primary → backups.
    PrePrepare(PrePrepare),
    /// Backup → all.
    Prepare(Voted),
    /// Replica → all.
    Commit(Voted),
    /// Replica → all (signed [`CheckpointVote`]).
    Checkpoint(Signed),
    /// Replica → all (signed [`ViewChange`]).
    ViewChange(Signed),
    /// New primary → all (signed [`NewView`]).
    NewView(Signed),
    /// Replica → all, periodically.
    Status(Status, Auth),
    /// Replica → replicas: send me this checkpoint's state.
    Fetch(Fetch, Auth),
    /// Replica → replica: a checkpoint's state (checked against its digest).
    State(CheckpointData),
    /// Replica → client.
    Reply(Reply),
    /// Replica → replica: the batch it holds at a sequence number, for a
    /// replica that missed the pre-prepare. Unauthenticated: it is only
    /// used once 2f+1 commits name its digest.
    Batch(Seq, Batch),
}

/// Mirrors [`Message`]'s layout for the variants encoded from borrowed
/// parts, so the primary does not copy a batch to send it.
#[derive(Serialize)]
enum MessageRef<'a> {
    Request(&'a AuthRequest),
    PrePrepare(&'a Vote, &'a Auth, &'a Batch),
}

impl Message {
    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Our types always serialize; an empty buffer would be dropped as
        // malformed by the receiver.
        codec::encode(self).unwrap_or_default()
    }

    /// Decodes untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        codec::decode(bytes)
    }

    /// The wire bytes of a request message, from a borrowed request.
    pub fn encode_request(r: &AuthRequest) -> Vec<u8> {
        codec::encode(&MessageRef::Request(r)).unwrap_or_default()
    }

    /// The wire bytes of a pre-prepare, from its parts.
    pub fn encode_pre_prepare(vote: &Vote, auth: &Auth, batch: &Batch) -> Vec<u8> {
        codec::encode(&MessageRef::PrePrepare(vote, auth, batch)).unwrap_or_default()
    }

    /// A short name, for fault reports.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Request(_) => MessageKind::Request,
            Message::PrePrepare(_) => MessageKind::PrePrepare,
            Message::Prepare(_) => MessageKind::Prepare,
            Message::Commit(_) => MessageKind::Commit,
            Message::Checkpoint(_) => MessageKind::Checkpoint,
            Message::ViewChange(_) => MessageKind::ViewChange,
            Message::NewView(_) => MessageKind::NewView,
            Message::Status(..) => MessageKind::Status,
            Message::Fetch(..) => MessageKind::Fetch,
            Message::State(_) => MessageKind::State,
            Message::Reply(_) => MessageKind::Reply,
            Message::Batch(..) => MessageKind::Batch,
        }
    }
}

/// The kind of a message, for fault reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum MessageKind {
    Request,
    PrePrepare,
    Prepare,
    Commit,
    Checkpoint,
    ViewChange,
    NewView,
    Status,
    Fetch,
    State,
    Reply,
    Batch,
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn pre_prepare_from_parts_encodes_like_the_message() {
        let batch = Batch {
            requests: vec![AuthRequest {
                request: Request {
                    client: 3,
                    timestamp: 7,
                    op: vec![1, 2, 3],
                },
                macs: vec![[4; 16]; 4],
            }],
        };
        let vote = Vote {
            view: 2,
            seq: 9,
            digest: batch.digest(),
            replica: 2,
        };
        let auth = Auth::Macs(vec![[5; 16]; 4]);
        let parts = Message::encode_pre_prepare(&vote, &auth, &batch);
        let whole = Message::PrePrepare(PrePrepare { vote, auth, batch }).encode();
        assert_eq!(parts, whole);
        assert!(matches!(
            Message::decode(&parts),
            Ok(Message::PrePrepare(_))
        ));
    }
}
