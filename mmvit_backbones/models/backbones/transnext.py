"""transnext backbone (to be written)."""
