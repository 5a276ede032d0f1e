mod changes;
