//! The model: what a deployment is ([`topology`]), what it holds ([`spec`]), which
//! nats-server release it runs ([`version`]) and who may connect to it ([`security`]). Pure
//! data: no I/O beyond reading env variables.

pub mod security;
pub mod spec;
pub mod topology;
pub mod version;

pub use security::{Permissions, Role, Security};
pub use spec::{ConsumerSpec, MirrorSpec, Spec, StreamSpec};
pub use topology::{
    Cluster, PortRole, PortUse, Profile, Server, ServerSettings, Topology, TopologyError,
    UnknownProfile, CONTAINER_PORTS, ENV_COMPOSE_PROFILE,
};
pub use version::{Version, PINNED_VERSION};
