-- Tenant-wide cut-offs in core.revocations (kind 'tenant').
--
-- A tenant's user ids restart when its storage is recreated, so a token or
-- refresh token of the old storage would name a different person in the new
-- one. When a tenant's storage is recreated or purged, or the tenant is
-- deleted, every token of that tenant issued up to that moment is revoked by
-- one row: kind 'tenant', tenant_id, not_before (auth.c, provision.c).
return {
  up = function(m)
    m:exec [[
      ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
      ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check
        CHECK (kind IN ('jti', 'user', 'rbac', 'tenant'));
    ]]
  end,
  down = function(m)
    m:exec [[
      DELETE FROM revocations WHERE kind = 'tenant';
      ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
      ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check
        CHECK (kind IN ('jti', 'user', 'rbac'));
    ]]
  end,
}
