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

use alloc::sync::Arc;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::auth::{Auth, Identity, Sig, Tag, Tags};
use super::clients::ClientTable;
use super::digest::{Digest, Hasher};
use super::wire::fast::{self, Reader, Writer};
use super::wire::{self, bytes, shared_bytes};
use super::{ClientId, ReplicaIndex, Seq, View};
use crate::codec::{self, DecodeError};

/// A client's operation, with the timestamp that makes it execute once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Who asks.
    pub client: ClientId,
    /// Strictly increasing per client; a request executes at most once.
    pub timestamp: u64,
    /// The opaque operation (shared: a request copied into a batch, the
    /// log and Q does not copy its bytes).
    #[serde(with = "shared_bytes")]
    pub op: Arc<[u8]>,
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
    /// `macs[i]`: the tag for replica i over [`Request::digest`] (held
    /// inline for up to 4 replicas).
    #[serde(with = "wire::tags")]
    pub macs: Tags,
}

impl AuthRequest {
    /// About how many bytes the request takes encoded.
    fn wire_len(&self) -> usize {
        32 + self.request.op.len() + 17 * self.macs.len()
    }
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
        let mut h = Self::hasher();
        for d in request_digests {
            h.part(&d.0);
        }
        h.finish()
    }

    /// A batch digest computed incrementally: `part` each request digest
    /// in order, then `finish` (as [`Batch::digest_of`]).
    pub(crate) fn hasher() -> Hasher {
        Hasher::new(b"neuroplex-bft/batch")
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
    #[serde(with = "bytes")]
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
    #[serde(with = "bytes")]
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
    #[serde(with = "bytes")]
    pub result: Vec<u8>,
    /// Tag over [`Reply::header`] followed by the result.
    pub mac: Tag,
}

/// Length of [`Reply::header`].
pub const REPLY_HEADER: usize = 29;

impl Reply {
    /// The fixed part of what the MAC covers; the result follows it. (MAC'd
    /// directly, no digest first: results are usually short, and HMAC
    /// hashes a long one anyway.)
    pub fn header(
        view: View,
        client: ClientId,
        timestamp: u64,
        replica: ReplicaIndex,
    ) -> [u8; REPLY_HEADER] {
        let mut p = [0; REPLY_HEADER];
        p[0] = 12;
        p[1..9].copy_from_slice(&view.to_le_bytes());
        p[9..17].copy_from_slice(&client.to_le_bytes());
        p[17..25].copy_from_slice(&timestamp.to_le_bytes());
        p[25..29].copy_from_slice(&replica.to_le_bytes());
        p
    }

    /// Everything the MAC covers, as one buffer (header then result).
    pub fn payload(
        view: View,
        client: ClientId,
        timestamp: u64,
        replica: ReplicaIndex,
        result: &[u8],
    ) -> Vec<u8> {
        let mut p = Vec::with_capacity(REPLY_HEADER + result.len());
        p.extend_from_slice(&Self::header(view, client, timestamp, replica));
        p.extend_from_slice(result);
        p
    }
}

/// A reply as the client reads it: the result borrowed from the received
/// bytes (most replies are redundant and dropped at once).
#[derive(Debug, Deserialize)]
pub(crate) struct ReplyView<'a> {
    pub(crate) view: View,
    pub(crate) client: ClientId,
    pub(crate) timestamp: u64,
    pub(crate) replica: ReplicaIndex,
    pub(crate) result: &'a [u8],
    pub(crate) mac: Tag,
}

/// Decodes `Message::Reply` as a [`ReplyView`]; any other message is an
/// error (the caller decodes it in full to tell which).
struct PeekReply<'a>(ReplyView<'a>);

impl<'de> Deserialize<'de> for PeekReply<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = PeekReply<'de>;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a reply")
            }
            fn visit_enum<A: serde::de::EnumAccess<'de>>(
                self,
                a: A,
            ) -> Result<Self::Value, A::Error> {
                use serde::de::{Error, VariantAccess};
                let (index, variant): (u32, _) = a.variant()?;
                if index != 10 {
                    return Err(A::Error::custom("not a reply"));
                }
                variant.newtype_variant().map(PeekReply)
            }
        }
        d.deserialize_enum("Message", MESSAGE_VARIANTS, V)
    }
}

const MESSAGE_VARIANTS: &[&str] = &[
    "Request",
    "PrePrepare",
    "Prepare",
    "Commit",
    "Checkpoint",
    "ViewChange",
    "NewView",
    "Status",
    "Fetch",
    "State",
    "Reply",
    "Batch",
];

/// Decodes a reply without copying its result; `None` if the bytes are not
/// a well-formed reply.
pub(crate) fn decode_reply_view(bytes: &[u8]) -> Option<ReplyView<'_>> {
    let canonical = || {
        let (variant, mut r) = Reader::message(bytes)?;
        if variant != fast::REPLY {
            return None;
        }
        let view = ReplyView {
            view: r.varint(u64::MAX)?,
            client: r.varint(u64::MAX)?,
            timestamp: r.varint(u64::MAX)?,
            replica: u32::try_from(r.varint(u64::from(u32::MAX))?).ok()?,
            result: r.bytes()?,
            mac: r.raw::<16>()?,
        };
        r.is_empty().then_some(view)
    };
    canonical().or_else(|| codec::decode::<PeekReply<'_>>(bytes).ok().map(|p| p.0))
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

impl Message {
    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => Self::encode_request(r),
            Message::PrePrepare(pp) => Self::encode_pre_prepare(&pp.vote, &pp.auth, &pp.batch),
            Message::Reply(r) => {
                Self::encode_reply(r.view, r.client, r.timestamp, r.replica, &r.result, &r.mac)
            }
            _ => wire::encode(self, self.wire_len()),
        }
    }

    /// About how many bytes the message takes encoded (a capacity hint).
    fn wire_len(&self) -> usize {
        match self {
            Message::Request(r) => 8 + r.wire_len(),
            Message::PrePrepare(pp) => 160 + batch_wire_len(&pp.batch),
            Message::Reply(r) => 64 + r.result.len(),
            Message::Batch(_, b) => 16 + batch_wire_len(b),
            Message::Checkpoint(s) | Message::ViewChange(s) | Message::NewView(s) => {
                96 + s.body.len()
            }
            Message::State(d) => 128 + d.snapshot.len(),
            _ => 128,
        }
    }

    /// Decodes untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        if let Some(m) = fast::decode(bytes) {
            return Ok(m);
        }
        codec::decode(bytes)
    }

    /// The wire bytes of a request message, from a borrowed request.
    pub fn encode_request(r: &AuthRequest) -> Vec<u8> {
        let mut w = Writer::message(fast::REQUEST, 8 + r.wire_len());
        w.request(r);
        w.0
    }

    /// The wire bytes of a pre-prepare, from its parts.
    pub fn encode_pre_prepare(vote: &Vote, auth: &Auth, batch: &Batch) -> Vec<u8> {
        let mut w = Writer::message(fast::PRE_PREPARE, 160 + batch_wire_len(batch));
        w.vote(vote);
        w.auth(auth);
        w.batch(batch);
        w.0
    }

    /// The wire bytes of a reply, from its parts (the result is not
    /// copied first).
    pub fn encode_reply(
        view: View,
        client: ClientId,
        timestamp: u64,
        replica: ReplicaIndex,
        result: &[u8],
        mac: &Tag,
    ) -> Vec<u8> {
        let mut w = Writer::message(fast::REPLY, 64 + result.len());
        w.varint(view);
        w.varint(client);
        w.varint(timestamp);
        w.varint(u64::from(replica));
        w.bytes(result);
        w.raw(mac);
        w.0
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

fn batch_wire_len(b: &Batch) -> usize {
    8 + b.requests.iter().map(AuthRequest::wire_len).sum::<usize>()
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
                    op: Arc::from(&[1u8, 2, 3][..]),
                },
                macs: [[4; 16]; 4].into_iter().collect(),
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
        let msg = Message::PrePrepare(PrePrepare { vote, auth, batch });
        let whole = msg.encode();
        assert_eq!(parts, whole);
        assert_eq!(parts, wire::encode(&msg, 0), "the derived encoding");
        assert!(matches!(
            Message::decode(&parts),
            Ok(Message::PrePrepare(_))
        ));
    }

    #[test]
    fn reply_from_parts_encodes_like_the_message() {
        let result = [9u8; 40];
        let mac = [7u8; 16];
        let parts = Message::encode_reply(3, 99, 12, 2, &result, &mac);
        let whole = Message::Reply(Reply {
            view: 3,
            client: 99,
            timestamp: 12,
            replica: 2,
            result: result.to_vec(),
            mac,
        })
        .encode();
        assert_eq!(parts, whole);
        assert_eq!(
            codec::decode::<Message>(&whole).map(|m| wire::encode(&m, 0)),
            Ok(whole.clone()),
            "the derived encoding"
        );
        assert_eq!(
            Reply::payload(3, 99, 12, 2, &result)[..REPLY_HEADER],
            Reply::header(3, 99, 12, 2)
        );
        let view = decode_reply_view(&whole).expect("a reply");
        assert_eq!(
            (
                view.view,
                view.client,
                view.timestamp,
                view.replica,
                view.result,
                view.mac
            ),
            (3, 99, 12, 2, &result[..], mac)
        );
        // Anything else is not a reply; truncations are refused.
        assert!(decode_reply_view(&Message::Batch(1, Batch::default()).encode()).is_none());
        for cut in 0..whole.len() {
            assert!(decode_reply_view(&whole[..cut]).is_none());
        }
    }

    #[test]
    fn a_request_encodes_as_documented() {
        // Version 1, variant 0, client 3, timestamp 7, the operation as a
        // byte string (length 3), the tags as one byte string (length 32).
        let r = AuthRequest {
            request: Request {
                client: 3,
                timestamp: 7,
                op: Arc::from(&[1u8, 2, 3][..]),
            },
            macs: [[4; 16], [5; 16]].into_iter().collect(),
        };
        let mut expected = alloc::vec![1u8, 0, 3, 7, 3, 1, 2, 3, 32];
        expected.extend_from_slice(&[4; 16]);
        expected.extend_from_slice(&[5; 16]);
        assert_eq!(Message::Request(r.clone()).encode(), expected);
        assert_eq!(Message::decode(&expected), Ok(Message::Request(r)));
    }

    /// A small deterministic generator for the equivalence test.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        /// Small and large values, to exercise every varint length.
        fn int(&mut self) -> u64 {
            match self.below(4) {
                0 => self.below(128),
                1 => self.below(1 << 20),
                2 => self.next() >> self.below(64),
                _ => u64::MAX - self.below(3),
            }
        }
        fn bytes(&mut self, max: u64) -> Vec<u8> {
            (0..self.below(max)).map(|_| self.next() as u8).collect()
        }
    }

    fn random_message(g: &mut Gen) -> Message {
        let request = |g: &mut Gen| AuthRequest {
            request: Request {
                client: g.int(),
                timestamp: g.int(),
                op: Arc::from(g.bytes(200)),
            },
            macs: (0..g.below(8)).map(|_| [g.next() as u8; 16]).collect(),
        };
        match g.below(3) {
            0 => Message::Request(request(g)),
            1 => {
                let batch = Batch {
                    requests: (0..g.below(5)).map(|_| request(g)).collect(),
                };
                let auth = if g.below(2) == 0 {
                    Auth::Signature(Sig([g.next() as u8; 32], [g.next() as u8; 32]))
                } else {
                    Auth::Macs((0..g.below(8)).map(|_| [g.next() as u8; 16]).collect())
                };
                Message::PrePrepare(PrePrepare {
                    vote: Vote {
                        view: g.int(),
                        seq: g.int(),
                        digest: Digest([g.next() as u8; 32]),
                        replica: g.int() as u32,
                    },
                    auth,
                    batch,
                })
            }
            _ => Message::Reply(Reply {
                view: g.int(),
                client: g.int(),
                timestamp: g.int(),
                replica: g.int() as u32,
                result: g.bytes(40),
                mac: [g.next() as u8; 16],
            }),
        }
    }

    /// The hand-written paths agree with the derived ones: same bytes out,
    /// and on any input (mutated, truncated, extended) a canonical decode
    /// is what serde decodes, while everything else goes to serde.
    #[test]
    fn hand_written_codecs_agree_with_the_derived_ones() {
        let mut g = Gen(0x9E37_79B9_7F4A_7C15);
        for _ in 0..3000 {
            let m = random_message(&mut g);
            let bytes = m.encode();
            assert_eq!(bytes, wire::encode(&m, 0), "{m:?}");
            assert_eq!(Message::decode(&bytes).as_ref(), Ok(&m));
            for _ in 0..20 {
                let mut b = bytes.clone();
                match g.below(4) {
                    0 => {
                        let k = g.below(b.len() as u64) as usize;
                        b[k] ^= 1 << g.below(8);
                    }
                    1 => b.truncate(g.below(b.len() as u64) as usize),
                    2 => b.push(g.next() as u8),
                    _ => {
                        let k = g.below(b.len() as u64) as usize;
                        b[k] = [0x80, 0x00, 0xff][g.below(3) as usize];
                    }
                }
                let reference = codec::decode::<Message>(&b);
                if let Some(f) = fast::decode(&b) {
                    assert_eq!(reference.as_ref(), Ok(&f), "{b:?}");
                }
                assert_eq!(Message::decode(&b), reference);
                let view = decode_reply_view(&b).map(|v| {
                    (
                        v.view,
                        v.client,
                        v.timestamp,
                        v.replica,
                        v.result.to_vec(),
                        v.mac,
                    )
                });
                let expected = match reference {
                    Ok(Message::Reply(r)) => {
                        Some((r.view, r.client, r.timestamp, r.replica, r.result, r.mac))
                    }
                    _ => None,
                };
                assert_eq!(view, expected, "{b:?}");
            }
        }
    }
}
