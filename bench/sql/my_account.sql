-- The database floor of the "my account" screen: what the server reads for one customer
-- (its row and tier, its 10 newest ledger entries, its 5 newest tier changes), by hand.
-- :cid is the same customer the HTTP workload reads.
SELECT c.id, c.name, c.points_balance, c.score, c.lifecycle_stage, t.key, t.name
  FROM customer c JOIN tier t ON t.id = c.tier_id WHERE c.id = :cid;
SELECT id, delta, balance_after, kind, reason, expires_at, created_at FROM points_entry
  WHERE customer_id = :cid ORDER BY created_at DESC, id DESC LIMIT 11;
SELECT tc.id, tc.reason, tc.score, tc.changed_at, f.key, t.key FROM tier_change tc
  LEFT JOIN tier f ON f.id = tc.from_tier_id JOIN tier t ON t.id = tc.to_tier_id
  WHERE tc.customer_id = :cid ORDER BY tc.changed_at DESC, tc.id DESC LIMIT 6;
