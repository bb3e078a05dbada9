-- The database floor of `redeemReward`: lock the customer, check the balance, take one
-- from the reward's stock when it has one (this one has none), write the ledger entry,
-- the redemption and the outbox event.
\set n random(1, :customers)
BEGIN;
SELECT id, points_balance FROM customer WHERE external_ref = 'BENCH-' || :n FOR UPDATE;
SELECT id, cost_points, stock, active FROM reward WHERE id = :reward;
UPDATE customer SET points_balance = points_balance - 1, revision = revision + 1, updated_at = now()
  WHERE external_ref = 'BENCH-' || :n AND points_balance >= 1;
WITH entry AS (
  INSERT INTO points_entry (id, customer_id, delta, balance_after, kind, reason, created_by, created_at)
    SELECT gen_random_uuid(), id, -1, points_balance, 'REDEEM', 'bench reward', 'pgbench', now()
    FROM customer WHERE external_ref = 'BENCH-' || :n
    RETURNING id, customer_id)
INSERT INTO redemption (id, customer_id, reward_id, points_spent, entry_id, redeemed_at)
  SELECT gen_random_uuid(), customer_id, :reward, 1, id, now() FROM entry;
INSERT INTO event_outbox (id, topic, customer_id, subject_id, created_at)
  SELECT gen_random_uuid(), 'POINTS_CHANGED', id, id, now() FROM customer WHERE external_ref = 'BENCH-' || :n;
COMMIT;
