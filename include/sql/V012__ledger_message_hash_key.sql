-- Ledger entries keyed on a hash of the message (issue 15). Additive: no row changes meaning.
--
-- The old unique key (source, ts, exit_code, message) put a message of up to 10,000 characters
-- into a btree entry; one that compresses badly exceeds PostgreSQL's 2,704-byte row limit, the
-- chunk holding it rolls back and the file's offset never moves again. The SHA-256 of the
-- message's UTF-8 bytes carries the same identity in 32 bytes: "unique per (source, ts, exit,
-- msg)" still holds, the rows already stored keep their meaning (they were unique on the
-- message, so they are unique on its hash), and every writer of ops.ledger_entries keeps
-- inserting the four columns it always did: the database computes the hash itself.
-- (A generated column cannot do it: convert_to() is not immutable, and text::bytea parses
-- backslash escapes instead of taking the bytes.)
ALTER TABLE ops.ledger_entries ADD COLUMN IF NOT EXISTS message_sha256 bytea;

CREATE OR REPLACE FUNCTION ops.ledger_entries_hash_message() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.message_sha256 := sha256(convert_to(NEW.message, 'UTF8'));
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS ledger_entries_hash_message ON ops.ledger_entries;
CREATE TRIGGER ledger_entries_hash_message
    BEFORE INSERT OR UPDATE OF message ON ops.ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ops.ledger_entries_hash_message();

UPDATE ops.ledger_entries SET message_sha256 = sha256(convert_to(message, 'UTF8'))
 WHERE message_sha256 IS NULL;
ALTER TABLE ops.ledger_entries ALTER COLUMN message_sha256 SET NOT NULL;

CREATE UNIQUE INDEX IF NOT EXISTS ledger_entries_message_key
    ON ops.ledger_entries (source, ts, exit_code, message_sha256);

-- The new key replaces the old one (same rows, same rule); ON CONFLICT names the new index's
-- columns.
ALTER TABLE ops.ledger_entries DROP CONSTRAINT IF EXISTS ledger_entries_key;
