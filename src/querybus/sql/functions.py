"""What querybus knows about PostgreSQL's built-in functions without asking a database.

Used when no :class:`~querybus.routing.classify.FunctionCatalog` (read from
``pg_proc``) is available — ``querybus route explain`` offline, or before the
catalog is loaded. The tables name built-in functions only; any other
function is *unknown* and sends its statement to the primary, because a
user-defined function may write and a write on a replica fails.

Some tables win over the catalog: sequence, advisory-lock and
:data:`KNOWN_VOLATILE` functions must run on the primary whatever pg_proc
says (``txid_current`` is *stable* there, yet assigns a transaction id, which
a standby refuses), and :data:`VOLATILE_READ_SAFE`
functions are volatile in ``pg_proc`` only because their result changes from
call to call — they never write, so a replica may run them.
"""

from __future__ import annotations

__all__ = [
    "ADVISORY_PREFIXES",
    "AGGREGATES",
    "KNOWN_SAFE",
    "KNOWN_VOLATILE",
    "REFUSED_FUNCTIONS",
    "SEQUENCE_FUNCTIONS",
    "VOLATILE_READ_SAFE",
]


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Sequence functions: nextval/setval write; currval/lastval read per-session
#: state that only the session that called nextval (on the primary) has.
SEQUENCE_FUNCTIONS = _names("nextval setval currval lastval")

#: pg_advisory_lock, pg_advisory_xact_lock_shared, pg_try_advisory_lock, … and unlocks.
ADVISORY_PREFIXES = ("pg_advisory", "pg_try_advisory")

#: Volatile in pg_proc but read-only: a replica may run them.
VOLATILE_READ_SAFE = _names(
    """
    random random_normal clock_timestamp timeofday gen_random_uuid uuid_generate_v4
    pg_sleep pg_sleep_for pg_sleep_until
    pg_is_in_recovery pg_last_wal_replay_lsn pg_last_wal_receive_lsn
    pg_last_xact_replay_timestamp pg_is_wal_replay_paused pg_get_wal_replay_pause_state
    """
)

#: Built-in functions that write, assign an xid or change server state: always the primary.
KNOWN_VOLATILE = _names(
    """
    set_config pg_notify txid_current pg_current_xact_id txid_current_if_assigned
    pg_current_xact_id_if_assigned pg_current_wal_lsn pg_current_wal_insert_lsn
    pg_current_wal_flush_lsn pg_switch_wal pg_create_restore_point
    pg_create_physical_replication_slot pg_create_logical_replication_slot
    pg_drop_replication_slot pg_logical_emit_message pg_terminate_backend
    pg_cancel_backend pg_reload_conf pg_rotate_logfile pg_stat_reset
    pg_stat_reset_shared pg_stat_reset_single_table_counters
    pg_stat_reset_single_function_counters pg_stat_reset_slru
    pg_wal_replay_pause pg_wal_replay_resume pg_promote
    lo_create lo_creat lo_import lo_export lo_unlink lo_open lo_close lo_write lo_put
    lo_from_bytea lo_truncate lo_truncate64 loread lowrite lo_lseek lo_lseek64
    dblink dblink_exec dblink_connect setseed
    pg_import_system_collations pg_replication_origin_create
    """
)

#: Aggregates (immutable); also counted as aggregates by the complexity score.
AGGREGATES = _names(
    """
    count sum avg min max array_agg string_agg bool_and bool_or every bit_and bit_or
    bit_xor json_agg jsonb_agg json_object_agg jsonb_object_agg xmlagg stddev
    stddev_pop stddev_samp variance var_pop var_samp corr covar_pop covar_samp
    regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope regr_sxx
    regr_sxy regr_syy percentile_cont percentile_disc mode range_agg
    range_intersect_agg any_value
    """
)

#: Common immutable or stable built-ins (no overload is volatile).
KNOWN_SAFE = _names(
    """
    row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value
    last_value nth_value
    lower upper length char_length character_length octet_length bit_length
    substring substr trim btrim ltrim rtrim replace concat concat_ws format left
    right position strpos split_part regexp_replace regexp_match regexp_matches
    regexp_split_to_array regexp_split_to_table regexp_count regexp_instr
    regexp_like regexp_substr md5 sha224 sha256 sha384 sha512 encode decode
    to_char to_date to_timestamp to_number initcap lpad rpad repeat reverse
    starts_with string_to_array string_to_table array_to_string translate ascii
    chr quote_ident quote_literal quote_nullable overlay normalize unistr
    abs ceil ceiling floor round trunc mod power pow sqrt cbrt exp ln log log10
    sign div pi degrees radians sin cos tan asin acos atan atan2 sinh cosh tanh
    gcd lcm factorial width_bucket scale min_scale trim_scale numeric_inc
    now date_trunc date_part extract age make_date make_time make_timestamp
    make_timestamptz make_interval justify_days justify_hours justify_interval
    statement_timestamp transaction_timestamp isfinite date_bin timezone
    json_build_object jsonb_build_object json_build_array jsonb_build_array
    to_json to_jsonb row_to_json array_to_json jsonb_set jsonb_set_lax jsonb_insert
    jsonb_pretty jsonb_strip_nulls json_strip_nulls json_extract_path
    json_extract_path_text jsonb_extract_path jsonb_extract_path_text
    json_array_elements json_array_elements_text jsonb_array_elements
    jsonb_array_elements_text json_each json_each_text jsonb_each jsonb_each_text
    json_object_keys jsonb_object_keys json_typeof jsonb_typeof json_array_length
    jsonb_array_length json_populate_record jsonb_populate_record
    json_populate_recordset jsonb_populate_recordset json_to_record jsonb_to_record
    json_to_recordset jsonb_to_recordset jsonb_path_query jsonb_path_query_array
    jsonb_path_query_first jsonb_path_exists jsonb_path_match json_object
    jsonb_object
    array_length array_lower array_upper array_ndims array_dims cardinality unnest
    array_append array_prepend array_cat array_position array_positions
    array_remove array_replace array_fill trim_array generate_series
    generate_subscripts
    pg_typeof version current_setting current_database current_schema
    current_schemas current_user session_user pg_backend_pid pg_postmaster_start_time
    pg_conf_load_time inet_client_addr inet_server_addr inet_server_port
    pg_relation_size pg_total_relation_size pg_table_size pg_indexes_size
    pg_database_size pg_size_pretty pg_column_size obj_description col_description
    format_type pg_get_viewdef pg_get_indexdef pg_get_constraintdef
    pg_get_functiondef pg_get_expr pg_get_userbyid pg_has_role has_table_privilege
    has_schema_privilege has_database_privilege has_column_privilege
    has_function_privilege to_regclass to_regtype to_regproc pg_table_is_visible
    pg_encoding_to_char num_nulls num_nonnulls
    lower_inc upper_inc lower_inf upper_inf isempty range_merge
    host hostmask masklen netmask network broadcast family abbrev set_masklen
    text_to_bytea convert convert_from convert_to get_byte set_byte get_bit
    set_bit bit_count xmlelement xmlforest xmlconcat xmlparse xpath xpath_exists
    to_tsvector to_tsquery plainto_tsquery phraseto_tsquery websearch_to_tsquery
    ts_rank ts_rank_cd ts_headline setweight numnode querytree strip
    uuid_extract_timestamp uuid_extract_version int4 int8 text numeric float8
    bool date
    """
)


_HIDDEN_SQL = "it runs SQL text that the adapter's checks never see"
_SERVER_FILES = "it reads or writes files on the database server"
_OTHER_SESSIONS = (
    "it signals other sessions, which run as the same login role (other callers' "
    "requests, other adapters' connections)"
)
_SERVER_STATE = "it changes the state of the whole server"

#: Functions an adapter refuses wherever they appear in a statement, whatever
#: the caller's rights, with the reason given to the caller. Privileges stop
#: most of them already (the adapter's login is no superuser); refusing them by
#: parse tree stops them before anything runs and says why.
REFUSED_FUNCTIONS: dict[str, str] = {
    # Even transaction-local, set_config can switch role or session
    # authorization for the rest of the statement, or forge the settings that
    # row-level security policies read (request.jwt.claims).
    "set_config": "it changes session settings (role, search_path, claims, timeouts)",
    **dict.fromkeys(
        _names(
            "query_to_xml query_to_xmlschema query_to_xml_and_xmlschema cursor_to_xml "
            "cursor_to_xmlschema ts_stat ts_rewrite dblink dblink_exec dblink_open "
            "dblink_send_query dblink_connect dblink_connect_u"
        ),
        _HIDDEN_SQL,
    ),
    **dict.fromkeys(
        _names(
            "pg_read_file pg_read_binary_file pg_ls_dir pg_stat_file pg_ls_logdir "
            "pg_ls_waldir pg_ls_tmpdir pg_ls_archive_statusdir lo_import lo_export "
            "pg_file_write pg_file_rename pg_file_unlink"
        ),
        _SERVER_FILES,
    ),
    **dict.fromkeys(("pg_terminate_backend", "pg_cancel_backend"), _OTHER_SESSIONS),
    **dict.fromkeys(
        _names(
            "pg_reload_conf pg_rotate_logfile pg_switch_wal pg_promote pg_create_restore_point "
            "pg_wal_replay_pause pg_wal_replay_resume pg_backup_start pg_backup_stop "
            "pg_create_physical_replication_slot pg_create_logical_replication_slot "
            "pg_drop_replication_slot pg_replication_origin_create pg_stat_reset "
            "pg_stat_reset_shared pg_stat_reset_slru pg_stat_reset_single_table_counters "
            "pg_stat_reset_single_function_counters pg_import_system_collations"
        ),
        _SERVER_STATE,
    ),
}
