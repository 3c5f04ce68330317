"""PostgreSQL's SQLSTATEs as exception classes (generated: do not edit).

One class per error SQLSTATE of PostgreSQL's ``errcodes.txt``, with the
code as the class attribute ``sqlstate`` (as asyncpg does), under the base
class of its SQLSTATE class. Regenerate with ``python tools/gen_sqlstates.py``;
``tests/unit/test_sqlstates_generated.py`` fails when this file is stale.
Look classes up with :func:`querybus.errors.query_error_class`.
"""

from __future__ import annotations

from querybus.errors import OperationalError, QueryError

__all__ = [
    "SQLSTATE_CLASSES",
    "ActiveSQLTransactionError",
    "AdminShutdownError",
    "AmbiguousAliasError",
    "AmbiguousColumnError",
    "AmbiguousFunctionError",
    "AmbiguousParameterError",
    "ArraySubscriptError",
    "AssertFailureError",
    "BadCopyFileFormatError",
    "BranchTransactionAlreadyActiveError",
    "CannotCoerceError",
    "CannotConnectNowError",
    "CantChangeRuntimeParamError",
    "CardinalityViolationError",
    "CaseNotFoundError",
    "CharacterNotInRepertoireError",
    "CheckViolationError",
    "CollationMismatchError",
    "ConfigFileError",
    "ConfigurationLimitExceededError",
    "ConnectionDoesNotExistError",
    "ConnectionExceptionError",
    "ConnectionFailureError",
    "ContainingSQLNotPermittedError",
    "CrashShutdownError",
    "DataCorruptedError",
    "DataExceptionError",
    "DatabaseDroppedError",
    "DatatypeMismatchError",
    "DatetimeFieldOverflowError",
    "DeadlockDetectedError",
    "DependentObjectsStillExistError",
    "DependentPrivilegeDescriptorsStillExistError",
    "DiagnosticsExceptionError",
    "DiskFullError",
    "DivisionByZeroError",
    "DuplicateAliasError",
    "DuplicateColumnError",
    "DuplicateCursorError",
    "DuplicateDatabaseError",
    "DuplicateFileError",
    "DuplicateFunctionError",
    "DuplicateJsonObjectKeyValueError",
    "DuplicateObjectError",
    "DuplicatePreparedStatementError",
    "DuplicateSchemaError",
    "DuplicateTableError",
    "ErrorInAssignmentError",
    "EscapeCharacterConflictError",
    "EventTriggerProtocolViolatedError",
    "ExclusionViolationError",
    "ExternalRoutineExceptionError",
    "ExternalRoutineInvocationExceptionError",
    "FDWColumnNameNotFoundError",
    "FDWDynamicParameterValueNeededError",
    "FDWError",
    "FDWFunctionSequenceError",
    "FDWInconsistentDescriptorInformationError",
    "FDWInvalidAttributeValueError",
    "FDWInvalidColumnNameError",
    "FDWInvalidColumnNumberError",
    "FDWInvalidDataTypeDescriptorsError",
    "FDWInvalidDataTypeError",
    "FDWInvalidDescriptorFieldIdentifierError",
    "FDWInvalidHandleError",
    "FDWInvalidOptionIndexError",
    "FDWInvalidOptionNameError",
    "FDWInvalidStringFormatError",
    "FDWInvalidStringLengthOrBufferLengthError",
    "FDWInvalidUseOfNullPointerError",
    "FDWNoSchemasError",
    "FDWOptionNameNotFoundError",
    "FDWOutOfMemoryError",
    "FDWReplyHandleError",
    "FDWSchemaNotFoundError",
    "FDWTableNotFoundError",
    "FDWTooManyHandlesError",
    "FDWUnableToCreateExecutionError",
    "FDWUnableToCreateReplyError",
    "FDWUnableToEstablishConnectionError",
    "FeatureNotSupportedError",
    "FloatingPointExceptionError",
    "ForeignKeyViolationError",
    "FunctionExecutedNoReturnStatementError",
    "GeneratedAlwaysError",
    "GroupingError",
    "HeldCursorRequiresSameIsolationLevelError",
    "IdleInTransactionSessionTimeoutError",
    "IdleSessionTimeoutError",
    "InFailedSQLTransactionError",
    "InappropriateAccessModeForBranchTransactionError",
    "InappropriateIsolationLevelForBranchTransactionError",
    "IndeterminateCollationError",
    "IndeterminateDatatypeError",
    "IndexCorruptedError",
    "IndicatorOverflowError",
    "InsufficientPrivilegeError",
    "InsufficientResourcesError",
    "IntegrityConstraintViolationError",
    "InternalServerError",
    "IntervalFieldOverflowError",
    "InvalidArgumentForLogarithmError",
    "InvalidArgumentForNthValueFunctionError",
    "InvalidArgumentForNtileFunctionError",
    "InvalidArgumentForPowerFunctionError",
    "InvalidArgumentForSQLJsonDatetimeFunctionError",
    "InvalidArgumentForWidthBucketFunctionError",
    "InvalidAuthorizationSpecificationError",
    "InvalidBinaryRepresentationError",
    "InvalidCatalogNameError",
    "InvalidCharacterValueForCastError",
    "InvalidColumnDefinitionError",
    "InvalidColumnReferenceError",
    "InvalidCursorDefinitionError",
    "InvalidCursorNameError",
    "InvalidCursorStateError",
    "InvalidDatabaseDefinitionError",
    "InvalidDatetimeFormatError",
    "InvalidEscapeCharacterError",
    "InvalidEscapeOctetError",
    "InvalidEscapeSequenceError",
    "InvalidForeignKeyError",
    "InvalidFunctionDefinitionError",
    "InvalidGrantOperationError",
    "InvalidGrantorError",
    "InvalidIndicatorParameterValueError",
    "InvalidJsonTextError",
    "InvalidLocatorSpecificationError",
    "InvalidNameError",
    "InvalidObjectDefinitionError",
    "InvalidParameterValueError",
    "InvalidPasswordError",
    "InvalidPrecedingOrFollowingSizeError",
    "InvalidPreparedStatementDefinitionError",
    "InvalidRecursionError",
    "InvalidRegularExpressionError",
    "InvalidRoleSpecificationError",
    "InvalidRowCountInLimitClauseError",
    "InvalidRowCountInResultOffsetClauseError",
    "InvalidSQLJsonSubscriptError",
    "InvalidSQLStatementNameError",
    "InvalidSavepointSpecificationError",
    "InvalidSchemaDefinitionError",
    "InvalidSchemaNameError",
    "InvalidSqlstateReturnedError",
    "InvalidTableDefinitionError",
    "InvalidTablesampleArgumentError",
    "InvalidTablesampleRepeatError",
    "InvalidTextRepresentationError",
    "InvalidTimeZoneDisplacementValueError",
    "InvalidTransactionInitiationError",
    "InvalidTransactionStateError",
    "InvalidTransactionTerminationError",
    "InvalidUseOfEscapeCharacterError",
    "InvalidXMLCommentError",
    "InvalidXMLContentError",
    "InvalidXMLDocumentError",
    "InvalidXMLProcessingInstructionError",
    "LocatorExceptionError",
    "LockFileExistsError",
    "LockNotAvailableError",
    "ModifyingExternalRoutineSQLDataNotPermittedError",
    "ModifyingSQLDataNotPermittedError",
    "MoreThanOneSQLJsonItemError",
    "MostSpecificTypeMismatchError",
    "NameTooLongError",
    "NoActiveSQLTransactionError",
    "NoActiveSQLTransactionForBranchTransactionError",
    "NoDataFoundError",
    "NoSQLJsonItemError",
    "NonNumericSQLJsonItemError",
    "NonUniqueKeysInAJsonObjectError",
    "NonstandardUseOfEscapeCharacterError",
    "NotAnXMLDocumentError",
    "NotNullViolationError",
    "NullValueInExternalRoutineNotAllowedError",
    "NullValueNoIndicatorParameterError",
    "NullValueNotAllowedError",
    "NumericValueOutOfRangeError",
    "ObjectInUseError",
    "ObjectNotInPrerequisiteStateError",
    "OperatorInterventionError",
    "OutOfMemoryError",
    "PLPGSQLError",
    "PostgresIOError",
    "PostgresSyntaxError",
    "PostgresSystemError",
    "ProgramLimitExceededError",
    "ProhibitedExternalRoutineSQLStatementAttemptedError",
    "ProhibitedSQLStatementAttemptedError",
    "ProtocolViolationError",
    "QueryCanceledError",
    "RaiseExceptionError",
    "ReadOnlySQLTransactionError",
    "ReadingExternalRoutineSQLDataNotPermittedError",
    "ReadingSQLDataNotPermittedError",
    "ReservedNameError",
    "RestrictViolationError",
    "SQLJsonArrayNotFoundError",
    "SQLJsonItemCannotBeCastToTargetTypeError",
    "SQLJsonMemberNotFoundError",
    "SQLJsonNumberNotFoundError",
    "SQLJsonObjectNotFoundError",
    "SQLJsonScalarRequiredError",
    "SQLRoutineExceptionError",
    "SQLStatementNotYetCompleteError",
    "SavepointExceptionError",
    "SchemaAndDataStatementMixingNotSupportedError",
    "SequenceGeneratorLimitExceededError",
    "SerializationFailureError",
    "SingletonSQLJsonItemRequiredError",
    "SnapshotTooOldError",
    "SqlclientUnableToEstablishSqlconnectionError",
    "SqlserverRejectedEstablishmentOfSqlconnectionError",
    "SrfProtocolViolatedError",
    "StackedDiagnosticsAccessedWithoutActiveHandlerError",
    "StatementCompletionUnknownError",
    "StatementTooComplexError",
    "StringDataLengthMismatchError",
    "StringDataRightTruncationError",
    "SubstringError",
    "SyntaxErrorOrAccessRuleViolationError",
    "TooManyArgumentsError",
    "TooManyColumnsError",
    "TooManyConnectionsError",
    "TooManyJsonArrayElementsError",
    "TooManyJsonObjectMembersError",
    "TooManyRowsError",
    "TransactionIntegrityConstraintViolationError",
    "TransactionResolutionUnknownError",
    "TransactionRollbackError",
    "TriggerProtocolViolatedError",
    "TriggeredActionExceptionError",
    "TriggeredDataChangeViolationError",
    "TrimError",
    "UndefinedColumnError",
    "UndefinedFileError",
    "UndefinedFunctionError",
    "UndefinedObjectError",
    "UndefinedParameterError",
    "UndefinedTableError",
    "UniqueViolationError",
    "UnsafeNewEnumValueUsageError",
    "UnterminatedCStringError",
    "UntranslatableCharacterError",
    "WindowingError",
    "WithCheckOptionViolationError",
    "WrongObjectTypeError",
    "ZeroLengthCharacterStringError",
]


class SQLStatementNotYetCompleteError(QueryError):
    """SQLSTATE class 03: SQL Statement Not Yet Complete."""

    sqlstate = "03000"


class ConnectionExceptionError(OperationalError):
    """SQLSTATE class 08: Connection Exception."""

    sqlstate = "08000"


class ConnectionDoesNotExistError(ConnectionExceptionError):
    """SQLSTATE 08003: connection_does_not_exist."""

    sqlstate = "08003"


class ConnectionFailureError(ConnectionExceptionError):
    """SQLSTATE 08006: connection_failure."""

    sqlstate = "08006"


class SqlclientUnableToEstablishSqlconnectionError(ConnectionExceptionError):
    """SQLSTATE 08001: sqlclient_unable_to_establish_sqlconnection."""

    sqlstate = "08001"


class SqlserverRejectedEstablishmentOfSqlconnectionError(ConnectionExceptionError):
    """SQLSTATE 08004: sqlserver_rejected_establishment_of_sqlconnection."""

    sqlstate = "08004"


class TransactionResolutionUnknownError(ConnectionExceptionError):
    """SQLSTATE 08007: transaction_resolution_unknown."""

    sqlstate = "08007"


class ProtocolViolationError(ConnectionExceptionError):
    """SQLSTATE 08P01: protocol_violation."""

    sqlstate = "08P01"


class TriggeredActionExceptionError(QueryError):
    """SQLSTATE class 09: Triggered Action Exception."""

    sqlstate = "09000"


class FeatureNotSupportedError(QueryError):
    """SQLSTATE class 0A: Feature Not Supported."""

    sqlstate = "0A000"


class InvalidTransactionInitiationError(QueryError):
    """SQLSTATE class 0B: Invalid Transaction Initiation."""

    sqlstate = "0B000"


class LocatorExceptionError(QueryError):
    """SQLSTATE class 0F: Locator Exception."""

    sqlstate = "0F000"


class InvalidLocatorSpecificationError(LocatorExceptionError):
    """SQLSTATE 0F001: invalid_locator_specification."""

    sqlstate = "0F001"


class InvalidGrantorError(QueryError):
    """SQLSTATE class 0L: Invalid Grantor."""

    sqlstate = "0L000"


class InvalidGrantOperationError(InvalidGrantorError):
    """SQLSTATE 0LP01: invalid_grant_operation."""

    sqlstate = "0LP01"


class InvalidRoleSpecificationError(QueryError):
    """SQLSTATE class 0P: Invalid Role Specification."""

    sqlstate = "0P000"


class DiagnosticsExceptionError(QueryError):
    """SQLSTATE class 0Z: Diagnostics Exception."""

    sqlstate = "0Z000"


class StackedDiagnosticsAccessedWithoutActiveHandlerError(DiagnosticsExceptionError):
    """SQLSTATE 0Z002: stacked_diagnostics_accessed_without_active_handler."""

    sqlstate = "0Z002"


class CaseNotFoundError(QueryError):
    """SQLSTATE class 20: Case Not Found."""

    sqlstate = "20000"


class CardinalityViolationError(QueryError):
    """SQLSTATE class 21: Cardinality Violation."""

    sqlstate = "21000"


class DataExceptionError(QueryError):
    """SQLSTATE class 22: Data Exception."""

    sqlstate = "22000"


class ArraySubscriptError(DataExceptionError):
    """SQLSTATE 2202E: array_subscript_error."""

    sqlstate = "2202E"


class CharacterNotInRepertoireError(DataExceptionError):
    """SQLSTATE 22021: character_not_in_repertoire."""

    sqlstate = "22021"


class DatetimeFieldOverflowError(DataExceptionError):
    """SQLSTATE 22008: datetime_field_overflow."""

    sqlstate = "22008"


class DivisionByZeroError(DataExceptionError):
    """SQLSTATE 22012: division_by_zero."""

    sqlstate = "22012"


class ErrorInAssignmentError(DataExceptionError):
    """SQLSTATE 22005: error_in_assignment."""

    sqlstate = "22005"


class EscapeCharacterConflictError(DataExceptionError):
    """SQLSTATE 2200B: escape_character_conflict."""

    sqlstate = "2200B"


class IndicatorOverflowError(DataExceptionError):
    """SQLSTATE 22022: indicator_overflow."""

    sqlstate = "22022"


class IntervalFieldOverflowError(DataExceptionError):
    """SQLSTATE 22015: interval_field_overflow."""

    sqlstate = "22015"


class InvalidArgumentForLogarithmError(DataExceptionError):
    """SQLSTATE 2201E: invalid_argument_for_logarithm."""

    sqlstate = "2201E"


class InvalidArgumentForNtileFunctionError(DataExceptionError):
    """SQLSTATE 22014: invalid_argument_for_ntile_function."""

    sqlstate = "22014"


class InvalidArgumentForNthValueFunctionError(DataExceptionError):
    """SQLSTATE 22016: invalid_argument_for_nth_value_function."""

    sqlstate = "22016"


class InvalidArgumentForPowerFunctionError(DataExceptionError):
    """SQLSTATE 2201F: invalid_argument_for_power_function."""

    sqlstate = "2201F"


class InvalidArgumentForWidthBucketFunctionError(DataExceptionError):
    """SQLSTATE 2201G: invalid_argument_for_width_bucket_function."""

    sqlstate = "2201G"


class InvalidCharacterValueForCastError(DataExceptionError):
    """SQLSTATE 22018: invalid_character_value_for_cast."""

    sqlstate = "22018"


class InvalidDatetimeFormatError(DataExceptionError):
    """SQLSTATE 22007: invalid_datetime_format."""

    sqlstate = "22007"


class InvalidEscapeCharacterError(DataExceptionError):
    """SQLSTATE 22019: invalid_escape_character."""

    sqlstate = "22019"


class InvalidEscapeOctetError(DataExceptionError):
    """SQLSTATE 2200D: invalid_escape_octet."""

    sqlstate = "2200D"


class InvalidEscapeSequenceError(DataExceptionError):
    """SQLSTATE 22025: invalid_escape_sequence."""

    sqlstate = "22025"


class NonstandardUseOfEscapeCharacterError(DataExceptionError):
    """SQLSTATE 22P06: nonstandard_use_of_escape_character."""

    sqlstate = "22P06"


class InvalidIndicatorParameterValueError(DataExceptionError):
    """SQLSTATE 22010: invalid_indicator_parameter_value."""

    sqlstate = "22010"


class InvalidParameterValueError(DataExceptionError):
    """SQLSTATE 22023: invalid_parameter_value."""

    sqlstate = "22023"


class InvalidPrecedingOrFollowingSizeError(DataExceptionError):
    """SQLSTATE 22013: invalid_preceding_or_following_size."""

    sqlstate = "22013"


class InvalidRegularExpressionError(DataExceptionError):
    """SQLSTATE 2201B: invalid_regular_expression."""

    sqlstate = "2201B"


class InvalidRowCountInLimitClauseError(DataExceptionError):
    """SQLSTATE 2201W: invalid_row_count_in_limit_clause."""

    sqlstate = "2201W"


class InvalidRowCountInResultOffsetClauseError(DataExceptionError):
    """SQLSTATE 2201X: invalid_row_count_in_result_offset_clause."""

    sqlstate = "2201X"


class InvalidTablesampleArgumentError(DataExceptionError):
    """SQLSTATE 2202H: invalid_tablesample_argument."""

    sqlstate = "2202H"


class InvalidTablesampleRepeatError(DataExceptionError):
    """SQLSTATE 2202G: invalid_tablesample_repeat."""

    sqlstate = "2202G"


class InvalidTimeZoneDisplacementValueError(DataExceptionError):
    """SQLSTATE 22009: invalid_time_zone_displacement_value."""

    sqlstate = "22009"


class InvalidUseOfEscapeCharacterError(DataExceptionError):
    """SQLSTATE 2200C: invalid_use_of_escape_character."""

    sqlstate = "2200C"


class MostSpecificTypeMismatchError(DataExceptionError):
    """SQLSTATE 2200G: most_specific_type_mismatch."""

    sqlstate = "2200G"


class NullValueNotAllowedError(DataExceptionError):
    """SQLSTATE 22004: null_value_not_allowed."""

    sqlstate = "22004"


class NullValueNoIndicatorParameterError(DataExceptionError):
    """SQLSTATE 22002: null_value_no_indicator_parameter."""

    sqlstate = "22002"


class NumericValueOutOfRangeError(DataExceptionError):
    """SQLSTATE 22003: numeric_value_out_of_range."""

    sqlstate = "22003"


class SequenceGeneratorLimitExceededError(DataExceptionError):
    """SQLSTATE 2200H: sequence_generator_limit_exceeded."""

    sqlstate = "2200H"


class StringDataLengthMismatchError(DataExceptionError):
    """SQLSTATE 22026: string_data_length_mismatch."""

    sqlstate = "22026"


class StringDataRightTruncationError(DataExceptionError):
    """SQLSTATE 22001: string_data_right_truncation."""

    sqlstate = "22001"


class SubstringError(DataExceptionError):
    """SQLSTATE 22011: substring_error."""

    sqlstate = "22011"


class TrimError(DataExceptionError):
    """SQLSTATE 22027: trim_error."""

    sqlstate = "22027"


class UnterminatedCStringError(DataExceptionError):
    """SQLSTATE 22024: unterminated_c_string."""

    sqlstate = "22024"


class ZeroLengthCharacterStringError(DataExceptionError):
    """SQLSTATE 2200F: zero_length_character_string."""

    sqlstate = "2200F"


class FloatingPointExceptionError(DataExceptionError):
    """SQLSTATE 22P01: floating_point_exception."""

    sqlstate = "22P01"


class InvalidTextRepresentationError(DataExceptionError):
    """SQLSTATE 22P02: invalid_text_representation."""

    sqlstate = "22P02"


class InvalidBinaryRepresentationError(DataExceptionError):
    """SQLSTATE 22P03: invalid_binary_representation."""

    sqlstate = "22P03"


class BadCopyFileFormatError(DataExceptionError):
    """SQLSTATE 22P04: bad_copy_file_format."""

    sqlstate = "22P04"


class UntranslatableCharacterError(DataExceptionError):
    """SQLSTATE 22P05: untranslatable_character."""

    sqlstate = "22P05"


class NotAnXMLDocumentError(DataExceptionError):
    """SQLSTATE 2200L: not_an_xml_document."""

    sqlstate = "2200L"


class InvalidXMLDocumentError(DataExceptionError):
    """SQLSTATE 2200M: invalid_xml_document."""

    sqlstate = "2200M"


class InvalidXMLContentError(DataExceptionError):
    """SQLSTATE 2200N: invalid_xml_content."""

    sqlstate = "2200N"


class InvalidXMLCommentError(DataExceptionError):
    """SQLSTATE 2200S: invalid_xml_comment."""

    sqlstate = "2200S"


class InvalidXMLProcessingInstructionError(DataExceptionError):
    """SQLSTATE 2200T: invalid_xml_processing_instruction."""

    sqlstate = "2200T"


class DuplicateJsonObjectKeyValueError(DataExceptionError):
    """SQLSTATE 22030: duplicate_json_object_key_value."""

    sqlstate = "22030"


class InvalidArgumentForSQLJsonDatetimeFunctionError(DataExceptionError):
    """SQLSTATE 22031: invalid_argument_for_sql_json_datetime_function."""

    sqlstate = "22031"


class InvalidJsonTextError(DataExceptionError):
    """SQLSTATE 22032: invalid_json_text."""

    sqlstate = "22032"


class InvalidSQLJsonSubscriptError(DataExceptionError):
    """SQLSTATE 22033: invalid_sql_json_subscript."""

    sqlstate = "22033"


class MoreThanOneSQLJsonItemError(DataExceptionError):
    """SQLSTATE 22034: more_than_one_sql_json_item."""

    sqlstate = "22034"


class NoSQLJsonItemError(DataExceptionError):
    """SQLSTATE 22035: no_sql_json_item."""

    sqlstate = "22035"


class NonNumericSQLJsonItemError(DataExceptionError):
    """SQLSTATE 22036: non_numeric_sql_json_item."""

    sqlstate = "22036"


class NonUniqueKeysInAJsonObjectError(DataExceptionError):
    """SQLSTATE 22037: non_unique_keys_in_a_json_object."""

    sqlstate = "22037"


class SingletonSQLJsonItemRequiredError(DataExceptionError):
    """SQLSTATE 22038: singleton_sql_json_item_required."""

    sqlstate = "22038"


class SQLJsonArrayNotFoundError(DataExceptionError):
    """SQLSTATE 22039: sql_json_array_not_found."""

    sqlstate = "22039"


class SQLJsonMemberNotFoundError(DataExceptionError):
    """SQLSTATE 2203A: sql_json_member_not_found."""

    sqlstate = "2203A"


class SQLJsonNumberNotFoundError(DataExceptionError):
    """SQLSTATE 2203B: sql_json_number_not_found."""

    sqlstate = "2203B"


class SQLJsonObjectNotFoundError(DataExceptionError):
    """SQLSTATE 2203C: sql_json_object_not_found."""

    sqlstate = "2203C"


class TooManyJsonArrayElementsError(DataExceptionError):
    """SQLSTATE 2203D: too_many_json_array_elements."""

    sqlstate = "2203D"


class TooManyJsonObjectMembersError(DataExceptionError):
    """SQLSTATE 2203E: too_many_json_object_members."""

    sqlstate = "2203E"


class SQLJsonScalarRequiredError(DataExceptionError):
    """SQLSTATE 2203F: sql_json_scalar_required."""

    sqlstate = "2203F"


class SQLJsonItemCannotBeCastToTargetTypeError(DataExceptionError):
    """SQLSTATE 2203G: sql_json_item_cannot_be_cast_to_target_type."""

    sqlstate = "2203G"


class IntegrityConstraintViolationError(QueryError):
    """SQLSTATE class 23: Integrity Constraint Violation."""

    sqlstate = "23000"


class RestrictViolationError(IntegrityConstraintViolationError):
    """SQLSTATE 23001: restrict_violation."""

    sqlstate = "23001"


class NotNullViolationError(IntegrityConstraintViolationError):
    """SQLSTATE 23502: not_null_violation."""

    sqlstate = "23502"


class ForeignKeyViolationError(IntegrityConstraintViolationError):
    """SQLSTATE 23503: foreign_key_violation."""

    sqlstate = "23503"


class UniqueViolationError(IntegrityConstraintViolationError):
    """SQLSTATE 23505: unique_violation."""

    sqlstate = "23505"


class CheckViolationError(IntegrityConstraintViolationError):
    """SQLSTATE 23514: check_violation."""

    sqlstate = "23514"


class ExclusionViolationError(IntegrityConstraintViolationError):
    """SQLSTATE 23P01: exclusion_violation."""

    sqlstate = "23P01"


class InvalidCursorStateError(QueryError):
    """SQLSTATE class 24: Invalid Cursor State."""

    sqlstate = "24000"


class InvalidTransactionStateError(QueryError):
    """SQLSTATE class 25: Invalid Transaction State."""

    sqlstate = "25000"


class ActiveSQLTransactionError(InvalidTransactionStateError):
    """SQLSTATE 25001: active_sql_transaction."""

    sqlstate = "25001"


class BranchTransactionAlreadyActiveError(InvalidTransactionStateError):
    """SQLSTATE 25002: branch_transaction_already_active."""

    sqlstate = "25002"


class HeldCursorRequiresSameIsolationLevelError(InvalidTransactionStateError):
    """SQLSTATE 25008: held_cursor_requires_same_isolation_level."""

    sqlstate = "25008"


class InappropriateAccessModeForBranchTransactionError(InvalidTransactionStateError):
    """SQLSTATE 25003: inappropriate_access_mode_for_branch_transaction."""

    sqlstate = "25003"


class InappropriateIsolationLevelForBranchTransactionError(InvalidTransactionStateError):
    """SQLSTATE 25004: inappropriate_isolation_level_for_branch_transaction."""

    sqlstate = "25004"


class NoActiveSQLTransactionForBranchTransactionError(InvalidTransactionStateError):
    """SQLSTATE 25005: no_active_sql_transaction_for_branch_transaction."""

    sqlstate = "25005"


class ReadOnlySQLTransactionError(InvalidTransactionStateError):
    """SQLSTATE 25006: read_only_sql_transaction."""

    sqlstate = "25006"


class SchemaAndDataStatementMixingNotSupportedError(InvalidTransactionStateError):
    """SQLSTATE 25007: schema_and_data_statement_mixing_not_supported."""

    sqlstate = "25007"


class NoActiveSQLTransactionError(InvalidTransactionStateError):
    """SQLSTATE 25P01: no_active_sql_transaction."""

    sqlstate = "25P01"


class InFailedSQLTransactionError(InvalidTransactionStateError):
    """SQLSTATE 25P02: in_failed_sql_transaction."""

    sqlstate = "25P02"


class IdleInTransactionSessionTimeoutError(InvalidTransactionStateError):
    """SQLSTATE 25P03: idle_in_transaction_session_timeout."""

    sqlstate = "25P03"


class InvalidSQLStatementNameError(QueryError):
    """SQLSTATE class 26: Invalid SQL Statement Name."""

    sqlstate = "26000"


class TriggeredDataChangeViolationError(QueryError):
    """SQLSTATE class 27: Triggered Data Change Violation."""

    sqlstate = "27000"


class InvalidAuthorizationSpecificationError(QueryError):
    """SQLSTATE class 28: Invalid Authorization Specification."""

    sqlstate = "28000"


class InvalidPasswordError(InvalidAuthorizationSpecificationError):
    """SQLSTATE 28P01: invalid_password."""

    sqlstate = "28P01"


class DependentPrivilegeDescriptorsStillExistError(QueryError):
    """SQLSTATE class 2B: Dependent Privilege Descriptors Still Exist."""

    sqlstate = "2B000"


class DependentObjectsStillExistError(DependentPrivilegeDescriptorsStillExistError):
    """SQLSTATE 2BP01: dependent_objects_still_exist."""

    sqlstate = "2BP01"


class InvalidTransactionTerminationError(QueryError):
    """SQLSTATE class 2D: Invalid Transaction Termination."""

    sqlstate = "2D000"


class SQLRoutineExceptionError(QueryError):
    """SQLSTATE class 2F: SQL Routine Exception."""

    sqlstate = "2F000"


class FunctionExecutedNoReturnStatementError(SQLRoutineExceptionError):
    """SQLSTATE 2F005: function_executed_no_return_statement."""

    sqlstate = "2F005"


class ModifyingSQLDataNotPermittedError(SQLRoutineExceptionError):
    """SQLSTATE 2F002: modifying_sql_data_not_permitted."""

    sqlstate = "2F002"


class ProhibitedSQLStatementAttemptedError(SQLRoutineExceptionError):
    """SQLSTATE 2F003: prohibited_sql_statement_attempted."""

    sqlstate = "2F003"


class ReadingSQLDataNotPermittedError(SQLRoutineExceptionError):
    """SQLSTATE 2F004: reading_sql_data_not_permitted."""

    sqlstate = "2F004"


class InvalidCursorNameError(QueryError):
    """SQLSTATE class 34: Invalid Cursor Name."""

    sqlstate = "34000"


class ExternalRoutineExceptionError(QueryError):
    """SQLSTATE class 38: External Routine Exception."""

    sqlstate = "38000"


class ContainingSQLNotPermittedError(ExternalRoutineExceptionError):
    """SQLSTATE 38001: containing_sql_not_permitted."""

    sqlstate = "38001"


class ModifyingExternalRoutineSQLDataNotPermittedError(ExternalRoutineExceptionError):
    """SQLSTATE 38002: modifying_sql_data_not_permitted."""

    sqlstate = "38002"


class ProhibitedExternalRoutineSQLStatementAttemptedError(ExternalRoutineExceptionError):
    """SQLSTATE 38003: prohibited_sql_statement_attempted."""

    sqlstate = "38003"


class ReadingExternalRoutineSQLDataNotPermittedError(ExternalRoutineExceptionError):
    """SQLSTATE 38004: reading_sql_data_not_permitted."""

    sqlstate = "38004"


class ExternalRoutineInvocationExceptionError(QueryError):
    """SQLSTATE class 39: External Routine Invocation Exception."""

    sqlstate = "39000"


class InvalidSqlstateReturnedError(ExternalRoutineInvocationExceptionError):
    """SQLSTATE 39001: invalid_sqlstate_returned."""

    sqlstate = "39001"


class NullValueInExternalRoutineNotAllowedError(ExternalRoutineInvocationExceptionError):
    """SQLSTATE 39004: null_value_not_allowed."""

    sqlstate = "39004"


class TriggerProtocolViolatedError(ExternalRoutineInvocationExceptionError):
    """SQLSTATE 39P01: trigger_protocol_violated."""

    sqlstate = "39P01"


class SrfProtocolViolatedError(ExternalRoutineInvocationExceptionError):
    """SQLSTATE 39P02: srf_protocol_violated."""

    sqlstate = "39P02"


class EventTriggerProtocolViolatedError(ExternalRoutineInvocationExceptionError):
    """SQLSTATE 39P03: event_trigger_protocol_violated."""

    sqlstate = "39P03"


class SavepointExceptionError(QueryError):
    """SQLSTATE class 3B: Savepoint Exception."""

    sqlstate = "3B000"


class InvalidSavepointSpecificationError(SavepointExceptionError):
    """SQLSTATE 3B001: invalid_savepoint_specification."""

    sqlstate = "3B001"


class InvalidCatalogNameError(QueryError):
    """SQLSTATE class 3D: Invalid Catalog Name."""

    sqlstate = "3D000"


class InvalidSchemaNameError(QueryError):
    """SQLSTATE class 3F: Invalid Schema Name."""

    sqlstate = "3F000"


class TransactionRollbackError(QueryError):
    """SQLSTATE class 40: Transaction Rollback."""

    sqlstate = "40000"
    retriable = True


class TransactionIntegrityConstraintViolationError(TransactionRollbackError):
    """SQLSTATE 40002: transaction_integrity_constraint_violation."""

    sqlstate = "40002"


class SerializationFailureError(TransactionRollbackError):
    """SQLSTATE 40001: serialization_failure."""

    sqlstate = "40001"


class StatementCompletionUnknownError(TransactionRollbackError):
    """SQLSTATE 40003: statement_completion_unknown."""

    sqlstate = "40003"


class DeadlockDetectedError(TransactionRollbackError):
    """SQLSTATE 40P01: deadlock_detected."""

    sqlstate = "40P01"


class SyntaxErrorOrAccessRuleViolationError(QueryError):
    """SQLSTATE class 42: Syntax Error or Access Rule Violation."""

    sqlstate = "42000"


class PostgresSyntaxError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42601: syntax_error."""

    sqlstate = "42601"


class InsufficientPrivilegeError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42501: insufficient_privilege."""

    sqlstate = "42501"


class CannotCoerceError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42846: cannot_coerce."""

    sqlstate = "42846"


class GroupingError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42803: grouping_error."""

    sqlstate = "42803"


class WindowingError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P20: windowing_error."""

    sqlstate = "42P20"


class InvalidRecursionError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P19: invalid_recursion."""

    sqlstate = "42P19"


class InvalidForeignKeyError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42830: invalid_foreign_key."""

    sqlstate = "42830"


class InvalidNameError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42602: invalid_name."""

    sqlstate = "42602"


class NameTooLongError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42622: name_too_long."""

    sqlstate = "42622"


class ReservedNameError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42939: reserved_name."""

    sqlstate = "42939"


class DatatypeMismatchError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42804: datatype_mismatch."""

    sqlstate = "42804"


class IndeterminateDatatypeError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P18: indeterminate_datatype."""

    sqlstate = "42P18"


class CollationMismatchError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P21: collation_mismatch."""

    sqlstate = "42P21"


class IndeterminateCollationError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P22: indeterminate_collation."""

    sqlstate = "42P22"


class WrongObjectTypeError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42809: wrong_object_type."""

    sqlstate = "42809"


class GeneratedAlwaysError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 428C9: generated_always."""

    sqlstate = "428C9"


class UndefinedObjectError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42704: undefined_object; also the base of 42703, 42883, 42P01."""

    sqlstate = "42704"


class UndefinedColumnError(UndefinedObjectError):
    """SQLSTATE 42703: undefined_column."""

    sqlstate = "42703"


class UndefinedFunctionError(UndefinedObjectError):
    """SQLSTATE 42883: undefined_function."""

    sqlstate = "42883"


class UndefinedTableError(UndefinedObjectError):
    """SQLSTATE 42P01: undefined_table."""

    sqlstate = "42P01"


class UndefinedParameterError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P02: undefined_parameter."""

    sqlstate = "42P02"


class DuplicateColumnError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42701: duplicate_column."""

    sqlstate = "42701"


class DuplicateCursorError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P03: duplicate_cursor."""

    sqlstate = "42P03"


class DuplicateDatabaseError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P04: duplicate_database."""

    sqlstate = "42P04"


class DuplicateFunctionError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42723: duplicate_function."""

    sqlstate = "42723"


class DuplicatePreparedStatementError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P05: duplicate_prepared_statement."""

    sqlstate = "42P05"


class DuplicateSchemaError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P06: duplicate_schema."""

    sqlstate = "42P06"


class DuplicateTableError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P07: duplicate_table."""

    sqlstate = "42P07"


class DuplicateAliasError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42712: duplicate_alias."""

    sqlstate = "42712"


class DuplicateObjectError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42710: duplicate_object."""

    sqlstate = "42710"


class AmbiguousColumnError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42702: ambiguous_column."""

    sqlstate = "42702"


class AmbiguousFunctionError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42725: ambiguous_function."""

    sqlstate = "42725"


class AmbiguousParameterError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P08: ambiguous_parameter."""

    sqlstate = "42P08"


class AmbiguousAliasError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P09: ambiguous_alias."""

    sqlstate = "42P09"


class InvalidColumnReferenceError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P10: invalid_column_reference."""

    sqlstate = "42P10"


class InvalidColumnDefinitionError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42611: invalid_column_definition."""

    sqlstate = "42611"


class InvalidCursorDefinitionError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P11: invalid_cursor_definition."""

    sqlstate = "42P11"


class InvalidDatabaseDefinitionError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P12: invalid_database_definition."""

    sqlstate = "42P12"


class InvalidFunctionDefinitionError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P13: invalid_function_definition."""

    sqlstate = "42P13"


class InvalidPreparedStatementDefinitionError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P14: invalid_prepared_statement_definition."""

    sqlstate = "42P14"


class InvalidSchemaDefinitionError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P15: invalid_schema_definition."""

    sqlstate = "42P15"


class InvalidTableDefinitionError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P16: invalid_table_definition."""

    sqlstate = "42P16"


class InvalidObjectDefinitionError(SyntaxErrorOrAccessRuleViolationError):
    """SQLSTATE 42P17: invalid_object_definition."""

    sqlstate = "42P17"


class WithCheckOptionViolationError(QueryError):
    """SQLSTATE class 44: WITH CHECK OPTION Violation."""

    sqlstate = "44000"


class InsufficientResourcesError(OperationalError):
    """SQLSTATE class 53: Insufficient Resources."""

    sqlstate = "53000"


class DiskFullError(InsufficientResourcesError):
    """SQLSTATE 53100: disk_full."""

    sqlstate = "53100"


class OutOfMemoryError(InsufficientResourcesError):
    """SQLSTATE 53200: out_of_memory."""

    sqlstate = "53200"


class TooManyConnectionsError(InsufficientResourcesError):
    """SQLSTATE 53300: too_many_connections."""

    sqlstate = "53300"


class ConfigurationLimitExceededError(InsufficientResourcesError):
    """SQLSTATE 53400: configuration_limit_exceeded."""

    sqlstate = "53400"


class ProgramLimitExceededError(QueryError):
    """SQLSTATE class 54: Program Limit Exceeded."""

    sqlstate = "54000"


class StatementTooComplexError(ProgramLimitExceededError):
    """SQLSTATE 54001: statement_too_complex."""

    sqlstate = "54001"


class TooManyColumnsError(ProgramLimitExceededError):
    """SQLSTATE 54011: too_many_columns."""

    sqlstate = "54011"


class TooManyArgumentsError(ProgramLimitExceededError):
    """SQLSTATE 54023: too_many_arguments."""

    sqlstate = "54023"


class ObjectNotInPrerequisiteStateError(QueryError):
    """SQLSTATE class 55: Object Not In Prerequisite State."""

    sqlstate = "55000"


class ObjectInUseError(ObjectNotInPrerequisiteStateError):
    """SQLSTATE 55006: object_in_use."""

    sqlstate = "55006"


class CantChangeRuntimeParamError(ObjectNotInPrerequisiteStateError):
    """SQLSTATE 55P02: cant_change_runtime_param."""

    sqlstate = "55P02"


class LockNotAvailableError(ObjectNotInPrerequisiteStateError):
    """SQLSTATE 55P03: lock_not_available."""

    sqlstate = "55P03"


class UnsafeNewEnumValueUsageError(ObjectNotInPrerequisiteStateError):
    """SQLSTATE 55P04: unsafe_new_enum_value_usage."""

    sqlstate = "55P04"


class OperatorInterventionError(OperationalError):
    """SQLSTATE class 57: Operator Intervention."""

    sqlstate = "57000"


class QueryCanceledError(OperatorInterventionError):
    """SQLSTATE 57014: query_canceled."""

    sqlstate = "57014"
    retriable = False


class AdminShutdownError(OperatorInterventionError):
    """SQLSTATE 57P01: admin_shutdown."""

    sqlstate = "57P01"


class CrashShutdownError(OperatorInterventionError):
    """SQLSTATE 57P02: crash_shutdown."""

    sqlstate = "57P02"


class CannotConnectNowError(OperatorInterventionError):
    """SQLSTATE 57P03: cannot_connect_now."""

    sqlstate = "57P03"


class DatabaseDroppedError(OperatorInterventionError):
    """SQLSTATE 57P04: database_dropped."""

    sqlstate = "57P04"


class IdleSessionTimeoutError(OperatorInterventionError):
    """SQLSTATE 57P05: idle_session_timeout."""

    sqlstate = "57P05"


class PostgresSystemError(OperationalError):
    """SQLSTATE class 58: System Error (errors external to PostgreSQL itself)."""

    sqlstate = "58000"


class PostgresIOError(PostgresSystemError):
    """SQLSTATE 58030: io_error."""

    sqlstate = "58030"


class UndefinedFileError(PostgresSystemError):
    """SQLSTATE 58P01: undefined_file."""

    sqlstate = "58P01"


class DuplicateFileError(PostgresSystemError):
    """SQLSTATE 58P02: duplicate_file."""

    sqlstate = "58P02"


class SnapshotTooOldError(QueryError):
    """SQLSTATE class 72: Snapshot Failure."""

    sqlstate = "72000"


class ConfigFileError(QueryError):
    """SQLSTATE class F0: Configuration File Error."""

    sqlstate = "F0000"


class LockFileExistsError(ConfigFileError):
    """SQLSTATE F0001: lock_file_exists."""

    sqlstate = "F0001"


class FDWError(QueryError):
    """SQLSTATE class HV: Foreign Data Wrapper Error (SQL/MED)."""

    sqlstate = "HV000"


class FDWColumnNameNotFoundError(FDWError):
    """SQLSTATE HV005: fdw_column_name_not_found."""

    sqlstate = "HV005"


class FDWDynamicParameterValueNeededError(FDWError):
    """SQLSTATE HV002: fdw_dynamic_parameter_value_needed."""

    sqlstate = "HV002"


class FDWFunctionSequenceError(FDWError):
    """SQLSTATE HV010: fdw_function_sequence_error."""

    sqlstate = "HV010"


class FDWInconsistentDescriptorInformationError(FDWError):
    """SQLSTATE HV021: fdw_inconsistent_descriptor_information."""

    sqlstate = "HV021"


class FDWInvalidAttributeValueError(FDWError):
    """SQLSTATE HV024: fdw_invalid_attribute_value."""

    sqlstate = "HV024"


class FDWInvalidColumnNameError(FDWError):
    """SQLSTATE HV007: fdw_invalid_column_name."""

    sqlstate = "HV007"


class FDWInvalidColumnNumberError(FDWError):
    """SQLSTATE HV008: fdw_invalid_column_number."""

    sqlstate = "HV008"


class FDWInvalidDataTypeError(FDWError):
    """SQLSTATE HV004: fdw_invalid_data_type."""

    sqlstate = "HV004"


class FDWInvalidDataTypeDescriptorsError(FDWError):
    """SQLSTATE HV006: fdw_invalid_data_type_descriptors."""

    sqlstate = "HV006"


class FDWInvalidDescriptorFieldIdentifierError(FDWError):
    """SQLSTATE HV091: fdw_invalid_descriptor_field_identifier."""

    sqlstate = "HV091"


class FDWInvalidHandleError(FDWError):
    """SQLSTATE HV00B: fdw_invalid_handle."""

    sqlstate = "HV00B"


class FDWInvalidOptionIndexError(FDWError):
    """SQLSTATE HV00C: fdw_invalid_option_index."""

    sqlstate = "HV00C"


class FDWInvalidOptionNameError(FDWError):
    """SQLSTATE HV00D: fdw_invalid_option_name."""

    sqlstate = "HV00D"


class FDWInvalidStringLengthOrBufferLengthError(FDWError):
    """SQLSTATE HV090: fdw_invalid_string_length_or_buffer_length."""

    sqlstate = "HV090"


class FDWInvalidStringFormatError(FDWError):
    """SQLSTATE HV00A: fdw_invalid_string_format."""

    sqlstate = "HV00A"


class FDWInvalidUseOfNullPointerError(FDWError):
    """SQLSTATE HV009: fdw_invalid_use_of_null_pointer."""

    sqlstate = "HV009"


class FDWTooManyHandlesError(FDWError):
    """SQLSTATE HV014: fdw_too_many_handles."""

    sqlstate = "HV014"


class FDWOutOfMemoryError(FDWError):
    """SQLSTATE HV001: fdw_out_of_memory."""

    sqlstate = "HV001"


class FDWNoSchemasError(FDWError):
    """SQLSTATE HV00P: fdw_no_schemas."""

    sqlstate = "HV00P"


class FDWOptionNameNotFoundError(FDWError):
    """SQLSTATE HV00J: fdw_option_name_not_found."""

    sqlstate = "HV00J"


class FDWReplyHandleError(FDWError):
    """SQLSTATE HV00K: fdw_reply_handle."""

    sqlstate = "HV00K"


class FDWSchemaNotFoundError(FDWError):
    """SQLSTATE HV00Q: fdw_schema_not_found."""

    sqlstate = "HV00Q"


class FDWTableNotFoundError(FDWError):
    """SQLSTATE HV00R: fdw_table_not_found."""

    sqlstate = "HV00R"


class FDWUnableToCreateExecutionError(FDWError):
    """SQLSTATE HV00L: fdw_unable_to_create_execution."""

    sqlstate = "HV00L"


class FDWUnableToCreateReplyError(FDWError):
    """SQLSTATE HV00M: fdw_unable_to_create_reply."""

    sqlstate = "HV00M"


class FDWUnableToEstablishConnectionError(FDWError):
    """SQLSTATE HV00N: fdw_unable_to_establish_connection."""

    sqlstate = "HV00N"


class PLPGSQLError(QueryError):
    """SQLSTATE class P0: PL/pgSQL Error."""

    sqlstate = "P0000"


class RaiseExceptionError(PLPGSQLError):
    """SQLSTATE P0001: raise_exception."""

    sqlstate = "P0001"


class NoDataFoundError(PLPGSQLError):
    """SQLSTATE P0002: no_data_found."""

    sqlstate = "P0002"


class TooManyRowsError(PLPGSQLError):
    """SQLSTATE P0003: too_many_rows."""

    sqlstate = "P0003"


class AssertFailureError(PLPGSQLError):
    """SQLSTATE P0004: assert_failure."""

    sqlstate = "P0004"


class InternalServerError(QueryError):
    """SQLSTATE class XX: Internal Error."""

    sqlstate = "XX000"


class DataCorruptedError(InternalServerError):
    """SQLSTATE XX001: data_corrupted."""

    sqlstate = "XX001"


class IndexCorruptedError(InternalServerError):
    """SQLSTATE XX002: index_corrupted."""

    sqlstate = "XX002"


#: SQLSTATE → its class, for every error SQLSTATE of errcodes.txt.
SQLSTATE_CLASSES: dict[str, type[QueryError]] = {
    "03000": SQLStatementNotYetCompleteError,
    "08000": ConnectionExceptionError,
    "08001": SqlclientUnableToEstablishSqlconnectionError,
    "08003": ConnectionDoesNotExistError,
    "08004": SqlserverRejectedEstablishmentOfSqlconnectionError,
    "08006": ConnectionFailureError,
    "08007": TransactionResolutionUnknownError,
    "08P01": ProtocolViolationError,
    "09000": TriggeredActionExceptionError,
    "0A000": FeatureNotSupportedError,
    "0B000": InvalidTransactionInitiationError,
    "0F000": LocatorExceptionError,
    "0F001": InvalidLocatorSpecificationError,
    "0L000": InvalidGrantorError,
    "0LP01": InvalidGrantOperationError,
    "0P000": InvalidRoleSpecificationError,
    "0Z000": DiagnosticsExceptionError,
    "0Z002": StackedDiagnosticsAccessedWithoutActiveHandlerError,
    "20000": CaseNotFoundError,
    "21000": CardinalityViolationError,
    "22000": DataExceptionError,
    "22001": StringDataRightTruncationError,
    "22002": NullValueNoIndicatorParameterError,
    "22003": NumericValueOutOfRangeError,
    "22004": NullValueNotAllowedError,
    "22005": ErrorInAssignmentError,
    "22007": InvalidDatetimeFormatError,
    "22008": DatetimeFieldOverflowError,
    "22009": InvalidTimeZoneDisplacementValueError,
    "2200B": EscapeCharacterConflictError,
    "2200C": InvalidUseOfEscapeCharacterError,
    "2200D": InvalidEscapeOctetError,
    "2200F": ZeroLengthCharacterStringError,
    "2200G": MostSpecificTypeMismatchError,
    "2200H": SequenceGeneratorLimitExceededError,
    "2200L": NotAnXMLDocumentError,
    "2200M": InvalidXMLDocumentError,
    "2200N": InvalidXMLContentError,
    "2200S": InvalidXMLCommentError,
    "2200T": InvalidXMLProcessingInstructionError,
    "22010": InvalidIndicatorParameterValueError,
    "22011": SubstringError,
    "22012": DivisionByZeroError,
    "22013": InvalidPrecedingOrFollowingSizeError,
    "22014": InvalidArgumentForNtileFunctionError,
    "22015": IntervalFieldOverflowError,
    "22016": InvalidArgumentForNthValueFunctionError,
    "22018": InvalidCharacterValueForCastError,
    "22019": InvalidEscapeCharacterError,
    "2201B": InvalidRegularExpressionError,
    "2201E": InvalidArgumentForLogarithmError,
    "2201F": InvalidArgumentForPowerFunctionError,
    "2201G": InvalidArgumentForWidthBucketFunctionError,
    "2201W": InvalidRowCountInLimitClauseError,
    "2201X": InvalidRowCountInResultOffsetClauseError,
    "22021": CharacterNotInRepertoireError,
    "22022": IndicatorOverflowError,
    "22023": InvalidParameterValueError,
    "22024": UnterminatedCStringError,
    "22025": InvalidEscapeSequenceError,
    "22026": StringDataLengthMismatchError,
    "22027": TrimError,
    "2202E": ArraySubscriptError,
    "2202G": InvalidTablesampleRepeatError,
    "2202H": InvalidTablesampleArgumentError,
    "22030": DuplicateJsonObjectKeyValueError,
    "22031": InvalidArgumentForSQLJsonDatetimeFunctionError,
    "22032": InvalidJsonTextError,
    "22033": InvalidSQLJsonSubscriptError,
    "22034": MoreThanOneSQLJsonItemError,
    "22035": NoSQLJsonItemError,
    "22036": NonNumericSQLJsonItemError,
    "22037": NonUniqueKeysInAJsonObjectError,
    "22038": SingletonSQLJsonItemRequiredError,
    "22039": SQLJsonArrayNotFoundError,
    "2203A": SQLJsonMemberNotFoundError,
    "2203B": SQLJsonNumberNotFoundError,
    "2203C": SQLJsonObjectNotFoundError,
    "2203D": TooManyJsonArrayElementsError,
    "2203E": TooManyJsonObjectMembersError,
    "2203F": SQLJsonScalarRequiredError,
    "2203G": SQLJsonItemCannotBeCastToTargetTypeError,
    "22P01": FloatingPointExceptionError,
    "22P02": InvalidTextRepresentationError,
    "22P03": InvalidBinaryRepresentationError,
    "22P04": BadCopyFileFormatError,
    "22P05": UntranslatableCharacterError,
    "22P06": NonstandardUseOfEscapeCharacterError,
    "23000": IntegrityConstraintViolationError,
    "23001": RestrictViolationError,
    "23502": NotNullViolationError,
    "23503": ForeignKeyViolationError,
    "23505": UniqueViolationError,
    "23514": CheckViolationError,
    "23P01": ExclusionViolationError,
    "24000": InvalidCursorStateError,
    "25000": InvalidTransactionStateError,
    "25001": ActiveSQLTransactionError,
    "25002": BranchTransactionAlreadyActiveError,
    "25003": InappropriateAccessModeForBranchTransactionError,
    "25004": InappropriateIsolationLevelForBranchTransactionError,
    "25005": NoActiveSQLTransactionForBranchTransactionError,
    "25006": ReadOnlySQLTransactionError,
    "25007": SchemaAndDataStatementMixingNotSupportedError,
    "25008": HeldCursorRequiresSameIsolationLevelError,
    "25P01": NoActiveSQLTransactionError,
    "25P02": InFailedSQLTransactionError,
    "25P03": IdleInTransactionSessionTimeoutError,
    "26000": InvalidSQLStatementNameError,
    "27000": TriggeredDataChangeViolationError,
    "28000": InvalidAuthorizationSpecificationError,
    "28P01": InvalidPasswordError,
    "2B000": DependentPrivilegeDescriptorsStillExistError,
    "2BP01": DependentObjectsStillExistError,
    "2D000": InvalidTransactionTerminationError,
    "2F000": SQLRoutineExceptionError,
    "2F002": ModifyingSQLDataNotPermittedError,
    "2F003": ProhibitedSQLStatementAttemptedError,
    "2F004": ReadingSQLDataNotPermittedError,
    "2F005": FunctionExecutedNoReturnStatementError,
    "34000": InvalidCursorNameError,
    "38000": ExternalRoutineExceptionError,
    "38001": ContainingSQLNotPermittedError,
    "38002": ModifyingExternalRoutineSQLDataNotPermittedError,
    "38003": ProhibitedExternalRoutineSQLStatementAttemptedError,
    "38004": ReadingExternalRoutineSQLDataNotPermittedError,
    "39000": ExternalRoutineInvocationExceptionError,
    "39001": InvalidSqlstateReturnedError,
    "39004": NullValueInExternalRoutineNotAllowedError,
    "39P01": TriggerProtocolViolatedError,
    "39P02": SrfProtocolViolatedError,
    "39P03": EventTriggerProtocolViolatedError,
    "3B000": SavepointExceptionError,
    "3B001": InvalidSavepointSpecificationError,
    "3D000": InvalidCatalogNameError,
    "3F000": InvalidSchemaNameError,
    "40000": TransactionRollbackError,
    "40001": SerializationFailureError,
    "40002": TransactionIntegrityConstraintViolationError,
    "40003": StatementCompletionUnknownError,
    "40P01": DeadlockDetectedError,
    "42000": SyntaxErrorOrAccessRuleViolationError,
    "42501": InsufficientPrivilegeError,
    "42601": PostgresSyntaxError,
    "42602": InvalidNameError,
    "42611": InvalidColumnDefinitionError,
    "42622": NameTooLongError,
    "42701": DuplicateColumnError,
    "42702": AmbiguousColumnError,
    "42703": UndefinedColumnError,
    "42704": UndefinedObjectError,
    "42710": DuplicateObjectError,
    "42712": DuplicateAliasError,
    "42723": DuplicateFunctionError,
    "42725": AmbiguousFunctionError,
    "42803": GroupingError,
    "42804": DatatypeMismatchError,
    "42809": WrongObjectTypeError,
    "42830": InvalidForeignKeyError,
    "42846": CannotCoerceError,
    "42883": UndefinedFunctionError,
    "428C9": GeneratedAlwaysError,
    "42939": ReservedNameError,
    "42P01": UndefinedTableError,
    "42P02": UndefinedParameterError,
    "42P03": DuplicateCursorError,
    "42P04": DuplicateDatabaseError,
    "42P05": DuplicatePreparedStatementError,
    "42P06": DuplicateSchemaError,
    "42P07": DuplicateTableError,
    "42P08": AmbiguousParameterError,
    "42P09": AmbiguousAliasError,
    "42P10": InvalidColumnReferenceError,
    "42P11": InvalidCursorDefinitionError,
    "42P12": InvalidDatabaseDefinitionError,
    "42P13": InvalidFunctionDefinitionError,
    "42P14": InvalidPreparedStatementDefinitionError,
    "42P15": InvalidSchemaDefinitionError,
    "42P16": InvalidTableDefinitionError,
    "42P17": InvalidObjectDefinitionError,
    "42P18": IndeterminateDatatypeError,
    "42P19": InvalidRecursionError,
    "42P20": WindowingError,
    "42P21": CollationMismatchError,
    "42P22": IndeterminateCollationError,
    "44000": WithCheckOptionViolationError,
    "53000": InsufficientResourcesError,
    "53100": DiskFullError,
    "53200": OutOfMemoryError,
    "53300": TooManyConnectionsError,
    "53400": ConfigurationLimitExceededError,
    "54000": ProgramLimitExceededError,
    "54001": StatementTooComplexError,
    "54011": TooManyColumnsError,
    "54023": TooManyArgumentsError,
    "55000": ObjectNotInPrerequisiteStateError,
    "55006": ObjectInUseError,
    "55P02": CantChangeRuntimeParamError,
    "55P03": LockNotAvailableError,
    "55P04": UnsafeNewEnumValueUsageError,
    "57000": OperatorInterventionError,
    "57014": QueryCanceledError,
    "57P01": AdminShutdownError,
    "57P02": CrashShutdownError,
    "57P03": CannotConnectNowError,
    "57P04": DatabaseDroppedError,
    "57P05": IdleSessionTimeoutError,
    "58000": PostgresSystemError,
    "58030": PostgresIOError,
    "58P01": UndefinedFileError,
    "58P02": DuplicateFileError,
    "72000": SnapshotTooOldError,
    "F0000": ConfigFileError,
    "F0001": LockFileExistsError,
    "HV000": FDWError,
    "HV001": FDWOutOfMemoryError,
    "HV002": FDWDynamicParameterValueNeededError,
    "HV004": FDWInvalidDataTypeError,
    "HV005": FDWColumnNameNotFoundError,
    "HV006": FDWInvalidDataTypeDescriptorsError,
    "HV007": FDWInvalidColumnNameError,
    "HV008": FDWInvalidColumnNumberError,
    "HV009": FDWInvalidUseOfNullPointerError,
    "HV00A": FDWInvalidStringFormatError,
    "HV00B": FDWInvalidHandleError,
    "HV00C": FDWInvalidOptionIndexError,
    "HV00D": FDWInvalidOptionNameError,
    "HV00J": FDWOptionNameNotFoundError,
    "HV00K": FDWReplyHandleError,
    "HV00L": FDWUnableToCreateExecutionError,
    "HV00M": FDWUnableToCreateReplyError,
    "HV00N": FDWUnableToEstablishConnectionError,
    "HV00P": FDWNoSchemasError,
    "HV00Q": FDWSchemaNotFoundError,
    "HV00R": FDWTableNotFoundError,
    "HV010": FDWFunctionSequenceError,
    "HV014": FDWTooManyHandlesError,
    "HV021": FDWInconsistentDescriptorInformationError,
    "HV024": FDWInvalidAttributeValueError,
    "HV090": FDWInvalidStringLengthOrBufferLengthError,
    "HV091": FDWInvalidDescriptorFieldIdentifierError,
    "P0000": PLPGSQLError,
    "P0001": RaiseExceptionError,
    "P0002": NoDataFoundError,
    "P0003": TooManyRowsError,
    "P0004": AssertFailureError,
    "XX000": InternalServerError,
    "XX001": DataCorruptedError,
    "XX002": IndexCorruptedError,
}
