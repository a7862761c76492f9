"""Staff: accounts, sign-in, sessions and what a counsellor is allowed to do."""
