//! Groups (spec section 14): the rules of every group operation, the
//! blacklist and closed-group policies, and a 5 000-member group.

mod large;
mod operations;
mod policy;
