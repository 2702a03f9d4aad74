//! The NATS client side: how to connect ([`connect`]), provisioning the spec's streams and
//! consumers ([`provision`]), the federated profiles' domains and mirrors ([`federation`]),
//! and what the cluster reports through the JetStream API ([`observe`], [`crosscheck`]).

pub mod connect;
pub mod crosscheck;
pub mod federation;
pub mod observe;
pub mod provision;

pub use connect::{Auth, ConnectError, NatsConfig, Tls};
