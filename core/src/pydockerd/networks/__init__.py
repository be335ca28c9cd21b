"""Networks: their records, addresses, DNS."""
