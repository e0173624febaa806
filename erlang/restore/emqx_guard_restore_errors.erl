%% @doc The words of a restore's errors: `emqx_guard_outcome:format_error/1' hands every
%% `{restore_refused, Why}' and `{restore_failed, Why}' here, so they stay tagged terms until then.
%% A refusal changed nothing (the preflight said no, or the input was bad); a failure happened
%% after the safety backup was taken, and says at which step.
-module(emqx_guard_restore_errors).

-export([format/2]).

%% @doc One line for Why, refused (`restore_refused') or failed (`restore_failed').
-spec format(restore_refused | restore_failed, term()) -> binary().
format(restore_refused, Why) ->
    refused(Why);
format(restore_failed, Why) ->
    failed(Why).

refused({not_core_node, Node}) ->
    text("~ts is a replicant node: EMQX imports backups on core nodes only (not_core_node); run the restore on a core node",
         [Node]);
refused({exact_unavailable, _Name}) ->
    <<"--exact is not available: EMQX's import merges (records not in the backup stay), and the import EMQX offers "
      "has no mode that deletes them; nothing was changed">>;
refused({not_an_export, Name}) ->
    text("~ts is not an EMQX export name (emqx-export-YYYY-MM-DD-HH-MM-SS.mmm.tar.gz, as guard backup_list shows it)",
         [printable(Name)]);
refused({already_here, #{name := Name, dir := Dir}}) ->
    text("~ts is already in ~ts: restore it without --remote", [Name, Dir]);
refused({fetch_failed, {exists, _}}) ->
    <<"the download found a backup of that name already in data/backup (nothing overwritten): restore it without --remote">>;
refused({fetch_failed, {decrypt, Detail}}) ->
    text("cannot decrypt the off-site backup (give the identity of the recipient with identity=<file>): ~ts", [describe(Detail)]);
refused({fetch_failed, {not_found, Detail}}) ->
    text("no such off-site backup (see guard backup_list --remote): ~ts", [describe(Detail)]);
refused({fetch_failed, {_Reason, Detail}}) ->
    text("the off-site backup could not be fetched: ~ts", [describe(Detail)]);
refused({corrupt_backup, #{name := Name, why := Why}}) ->
    text("~ts does not verify: ~ts", [Name, emqx_guard_outcome:format_error(Why)]);
refused({verify_unavailable, Why}) ->
    text("the backup could not be read in full: ~ts", [emqx_guard_outcome:format_error(Why)]);
refused({unreadable_backup, #{name := Name, why := Why}}) ->
    text("~ts verifies but its contents cannot be read: ~ts", [Name, describe(Why)]);
refused({edition_refused, #{node := Node}}) ->
    text("an EMQX Enterprise backup cannot be imported into EMQX ~ts (open source): EMQX refuses it (ee_to_ce_backup)",
         [Node]);
refused({newer_version, #{backup := B, node := N}}) ->
    text("the backup is from EMQX ~ts, newer than this node's ~ts: EMQX imports only backups of an older or the same "
         "major.minor version", [B, N]);
refused({mixed_versions, #{node := V, others := Others}}) ->
    text("EMQX ~ts imports only while every running node runs the same major.minor, and ~ts: upgrade every "
         "node first (EMQX would refuse the import)", [V, lists:join(", ", [text("~ts runs ~ts", [N, O]) || {N, O} <- Others])]);
refused({security_profile_mismatch, #{backup := Made, node := V}}) ->
    text("this node runs EMQX ~ts under the hardened security profile and the backup was made under ~ts: EMQX refuses "
         "it unless the import is told allow_security_profile_mismatch, which guard backup_restore never does for you; "
         "after reviewing what the legacy profile allowed, take a backup (guard backup_now) and run emqx ctl data "
         "import <file> --allow-security-profile-mismatch; nothing was changed",
         [V, case Made of <<"none">> -> <<"no profile (before EMQX 6.3, as legacy)">>; _ -> <<"'", Made/binary, "'">> end]);
refused({bad_version, V}) ->
    text("the backup's META.hocon holds no version EMQX can read (~ts)", [printable(V)]);
refused({already_restoring, #{name := Name, started_at := At}}) ->
    text("a restore of ~ts is already running (since ~ts)", [Name, emqx_guard_render:iso8601(At, 0)]);
refused({safety_backup_refused, Line}) ->
    text("the safety backup could not start: ~ts; nothing was imported, try again", [Line]);
refused(Why) ->
    emqx_guard_outcome:format_error(Why).

failed(#{why := Why}) ->
    failed(Why);
failed({safety_backup, Why}) ->
    text("safety backup: ~ts; nothing was imported", [Why]);
failed({import, #{words := Words}}) ->
    text("import: EMQX's import failed: ~ts (the safety backup is kept)", [Words]);
failed({import, {import_unavailable, _}}) ->
    <<"import: this EMQX has no data import (emqx_mgmt_data_backup:import/2); nothing was imported">>;
failed({import_partial, #{config_errors := C, db_errors := D}}) ->
    text("import: EMQX applied the backup in part: ~ts (the rest was applied; the safety backup is kept)",
         [lists:join("; ", [text("config ~ts: ~ts", [K, describe(V)]) || {K, V} <- C] ++
                          [text("table ~ts: ~ts", [K, describe(V)]) || {K, V} <- D])]);
failed({plugins_failed, Lines}) ->
    text("plugins: ~ts (the import itself was applied; the safety backup is kept)",
         [lists:join("; ", [L || L <- Lines, binary:match(L, [<<"REFUSED">>, <<"did not install">>, <<"not applied">>,
                                                                <<"cannot be read">>, <<"has no plugins">>]) =/= nomatch])]);
failed({bootstrap_keys, Why}) ->
    text("api keys: the keys of api_key.bootstrap_file could not be written again after the import: ~ts", [describe(Why)]);
failed({crashed, #{class := Class, reason := Reason}}) ->
    text("the restore crashed (~ts): ~ts", [Class, describe(Reason)]);
failed(Why) ->
    emqx_guard_outcome:format_error(Why).

describe(Text) when is_binary(Text) -> Text;
describe(Term) -> emqx_guard_outcome:format_error(Term).

printable(B) when is_binary(B) -> B;
printable(T) -> text("~0tp", [T]).

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
