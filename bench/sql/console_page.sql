-- The database floor of a 50-customer console page: the page in lifetime-spend order,
-- the tiers, and the page's tags, as three statements.
SELECT id, name, email, region, lifecycle_stage, tier_id, score, points_balance,
       lifetime_spend_e4, last_purchase_at, rfm_segment, abc_class
  FROM customer WHERE erased_at IS NULL
  ORDER BY lifetime_spend_e4 DESC, id DESC LIMIT 51;
SELECT id, key, name, rank FROM tier;
SELECT customer_id, tag FROM customer_tag WHERE customer_id IN (
  SELECT id FROM customer WHERE erased_at IS NULL
  ORDER BY lifetime_spend_e4 DESC, id DESC LIMIT 50);
