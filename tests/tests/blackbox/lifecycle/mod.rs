mod admin_rest;
mod changes;
