//! Groups (spec section 14): the rules of every group operation, the
//! blacklist and closed-group policies, invitations answered by their
//! invitee, and a 5 000-member group.

mod invitations;
mod large;
mod operations;
mod policy;
