%% @doc `guard backup_restore' (issue 23) against the stand-ins, whose import behaves as EMQX's:
%% it merges, it refuses a replicant, a newer version and an Enterprise backup on open source,
%% and it can fail in part. Real files, the real NIF, real backup runs through the scheduler, a
%% real HTTP receiver for the notifications, and (`remote_restore_from_s3_encrypted') a real S3
%% server (s3s-fs) with age encryption.
-module(emqx_guard_restore_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("kernel/include/file.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([
    dry_run_shows_and_changes_nothing/1,
    restore_merges_and_leaves_a_safety_backup/1,
    bad_input_is_refused_and_changes_nothing/1,
    replicant_is_refused/1,
    failing_import_keeps_safety_backup_alarms_and_notifies/1,
    failing_safety_backup_stops_before_the_import/1,
    import_refused_by_emqx_keeps_safety_backup_and_changes_nothing/1,
    bootstrap_api_key_is_never_locked_out/1,
    safety_backup_kept_until_a_later_good_backup/1,
    dashboard_interface_report_is_json/1,
    remote_restore_from_s3_encrypted/1,
    companion_made_private_verified_and_pruned_with_export/1,
    restore_installs_missing_plugin_and_its_config/1,
    companion_hash_mismatch_is_refused_for_that_plugin/1,
    install_gate_gets_the_allow_line/1,
    companion_uploaded_encrypted_and_pruned_remotely/1,
    companions_never_touch_uploads_hand_made_files_or_namespaces/1,
    backup_running_refuses_and_changes_nothing/1,
    real_5_3_2_export_read_in_the_dry_run/1,
    table_file_that_is_no_mnesia_backup_is_shown_not_counted/1,
    import_failed_as_a_whole_in_emqx_words/1,
    security_profile_mismatch_refused_before_the_safety_backup/1
]).

-import(emqx_guard_ct_helper, [fake_opts/1, start_app/1, set_now/1, ctl/1, backups/0]).

-define(ALARM, emqx_guard_backup_failed).

all() ->
    [
        dry_run_shows_and_changes_nothing,
        restore_merges_and_leaves_a_safety_backup,
        bad_input_is_refused_and_changes_nothing,
        replicant_is_refused,
        failing_import_keeps_safety_backup_alarms_and_notifies,
        failing_safety_backup_stops_before_the_import,
        import_refused_by_emqx_keeps_safety_backup_and_changes_nothing,
        import_failed_as_a_whole_in_emqx_words,
        security_profile_mismatch_refused_before_the_safety_backup,
        bootstrap_api_key_is_never_locked_out,
        safety_backup_kept_until_a_later_good_backup,
        dashboard_interface_report_is_json,
        remote_restore_from_s3_encrypted,
        companion_made_private_verified_and_pruned_with_export,
        restore_installs_missing_plugin_and_its_config,
        companion_hash_mismatch_is_refused_for_that_plugin,
        install_gate_gets_the_allow_line,
        companion_uploaded_encrypted_and_pruned_remotely,
        companions_never_touch_uploads_hand_made_files_or_namespaces,
        backup_running_refuses_and_changes_nothing,
        real_5_3_2_export_read_in_the_dry_run,
        table_file_that_is_no_mnesia_backup_is_shown_not_counted
    ].

init_per_suite(Config) ->
    emqx_guard_ct_helper:init_suite(Config).

end_per_suite(_Config) ->
    emqx:reset(),
    ok.

init_per_testcase(TC, Config) ->
    Config1 = emqx_guard_ct_helper:init_case(TC, Config),
    ok = emqx_guard_standin_db:reset(),
    ok = emqx_release:reset(),
    ok = emqx_security_profile:reset(),
    ok = mria_rlog:reset(),
    ok = emqx_mgmt_auth:set_bootstrap_file(<<>>),
    ok = emqx_plugins:reset(),
    set_now(erlang:system_time(millisecond)),
    start_app(fake_opts(#{})),
    case TC of
        _ when TC =:= remote_restore_from_s3_encrypted; TC =:= companion_uploaded_encrypted_and_pruned_remotely ->
            case emqx_guard_s3_helper:binary() of
                false -> {skip, "s3s-fs is not installed (make test-deps)"};
                _ -> [{s3, emqx_guard_s3_helper:start(?config(data_dir, Config1))} | Config1]
            end;
        _ ->
            Config1
    end.

end_per_testcase(_TC, Config) ->
    case ?config(s3, Config) of
        undefined -> ok;
        S3 -> emqx_guard_s3_helper:stop(S3)
    end,
    ok = emqx_guard_standin_db:reset(),
    ok = emqx_release:reset(),
    ok = emqx_security_profile:reset(),
    ok = mria_rlog:reset(),
    ok = emqx_plugins:reset(),
    emqx_guard_ct_helper:end_case().

%%--------------------------------------------------------------------------------------------

%% The dry run reads the backup and says what an import would bring (config keys, tables with
%% their rows, the API keys, the merge, the version rules), and changes nothing: no safety
%% backup, no import.
dry_run_shows_and_changes_nothing(_Config) ->
    seed(),
    Name = backup_now(),
    Before = backups(),
    Out = ctl(["backup_restore", Name, "--dry-run"]),
    ?assertEqual("preflight: checking " ++ Name, hd(Out), Out),
    ?assert(lists:member("preflight: done: it can be imported here", Out), Out),
    ?assertMatch([_], [L || L <- Out, lists:prefix("Backup:      " ++ Name ++ " (local, ", L)]),
    ?assert(lists:member("Config keys: mqtt, retainer", Out), Out),
    [Tables] = [L || "Tables:      " ++ _ = L <- Out],
    ?assertNotEqual(nomatch, string:find(Tables, "emqx_banned (2)"), Tables),
    ?assertNotEqual(nomatch, string:find(Tables, "emqx_app (1)"), Tables),
    ?assertMatch([_], [L || "Import:      merge: " ++ _ = L <- Out]),
    ?assertMatch([_], [L || "EMQX:        made by EMQX 5.3.2 ce; " ++ _ = L <- Out]),
    ?assertEqual("Dry run: nothing was changed. Restore it with: emqx ctl guard backup_restore " ++ Name, lists:last(Out)),
    ?assertEqual(Before, backups()),
    ?assertEqual(0, emqx_mgmt_data_backup:import_count()),
    ?assertEqual(undefined, emqx_guard_restore_state:last()).

%% A restore takes a safety backup of the present state, then runs EMQX's import, printing its
%% lines as EMQX prints them: what the backup holds comes back, what it does not hold stays
%% (EMQX merges). The status shows the restore; retention holds the safety backup.
restore_merges_and_leaves_a_safety_backup(_Config) ->
    seed(),
    Name = backup_now(),
    %% the present state differs: a row changed, a row added, a config key changed
    ok = emqx_guard_standin_db:write({emqx_banned, <<"client-1">>, <<"changed">>}),
    ok = emqx_guard_standin_db:write({emqx_banned, <<"client-3">>, <<"added later">>}),
    ok = emqx_guard_standin_db:set_config(<<"mqtt">>, <<"{max_packet_size = 5MB}">>),
    Out = ctl(["backup_restore", Name]),
    [Safety] = backups() -- [Name],
    %% the safety backup's run, its steps as backup_now prints them, before the import
    ?assert(lists:member("safety: backing up the present state first (a normal backup run)", Out), Out),
    ?assertMatch([_], [L || "safety: done: " ++ Rest = L <- Out, lists:prefix(Safety, Rest)]),
    {BeforeImport, [_ | FromImport]} = lists:splitwith(fun(L) -> not lists:prefix("import: ", L) end, Out),
    ?assert(lists:any(fun(L) -> lists:prefix("export: done in ", L) end, BeforeImport), Out),
    ImportLines = lists:takewhile(fun(L) -> not lists:prefix("api keys:", L) end, FromImport),
    Path = filename:join(emqx_guard_emqx:backup_dir(), Name),
    ?assertEqual(lists:flatten(io_lib:format("Importing data from ~p...", [Path])), hd(ImportLines)),
    ?assert(lists:member("Importing cluster configuration...", ImportLines), ImportLines),
    ?assert(lists:member("Importing emqx_banned database table...", ImportLines), ImportLines),
    ?assertEqual("Data has been imported successfully.", lists:last(ImportLines)),
    ?assertMatch("Restored " ++ _, lists:last(Out)),
    ?assertNotEqual(nomatch, string:find(lists:last(Out), "The safety backup " ++ Safety ++ " is kept")),
    %% merged: the backup's rows are back, the later row stays
    ?assertEqual(
        [{emqx_banned, <<"client-1">>, <<"original">>}, {emqx_banned, <<"client-2">>, <<"original">>},
         {emqx_banned, <<"client-3">>, <<"added later">>}],
        emqx_guard_standin_db:rows(emqx_banned)
    ),
    ?assertEqual(<<"{max_packet_size = 1MB}">>, maps:get(<<"mqtt">>, emqx_guard_standin_db:config())),
    %% the safety backup holds the state from before the restore
    {ok, #{tables := Tables}} = emqx_guard_restore_preflight:contents(filename:join(emqx_guard_emqx:backup_dir(), Safety)),
    ?assert(lists:member(#{name => <<"emqx_banned">>, rows => 3}, Tables), Tables),
    %% recorded: status (text and JSON), the hold
    [StatusLine] = [L || "last restore: " ++ _ = L <- ctl(["backup_status"])],
    ?assertNotEqual(nomatch, string:find(StatusLine, Name ++ " on " ++ atom_to_list(node()) ++ ": ok; safety backup " ++ Safety)),
    #{<<"last_restore">> := #{<<"result">> := <<"ok">>, <<"file">> := NameBin, <<"safety">> := SafetyBin}} =
        emqx_guard_report:status(),
    ?assertEqual({list_to_binary(Name), list_to_binary(Safety)}, {NameBin, SafetyBin}),
    ?assertEqual([list_to_binary(Safety)], emqx_guard_restore_state:held()),
    ?assertEqual([], emqx_alarm:active_alarms()).

%% Bad input: one clear line, nothing changed, no safety backup made, no import started.
bad_input_is_refused_and_changes_nothing(_Config) ->
    seed(),
    Good = backup_now(),
    Dir = emqx_guard_emqx:backup_dir(),
    %% a corrupted file under an export name
    Corrupt = "emqx-export-2020-01-01-00-00-00.000.tar.gz",
    {ok, Bytes} = file:read_file(filename:join(Dir, Good)),
    ok = file:write_file(filename:join(Dir, Corrupt), binary:part(Bytes, 0, byte_size(Bytes) div 2)),
    %% a newer version, and an Enterprise backup, each made by a node that runs it
    ok = emqx_release:set("5.4.0", ce),
    Newer = backup_now(),
    ok = emqx_release:set("5.3.2", ee),
    Enterprise = backup_now(),
    ok = emqx_release:reset(),
    %% an upload under another name
    ok = file:write_file(filename:join(Dir, "uploaded.tar.gz"), Bytes),
    Before = {backups(), file:list_dir(Dir), emqx_guard_standin_db:rows(emqx_banned)},
    Cases = [
        {["backup_restore", "emqx-export-2019-01-01-00-00-00.000.tar.gz"], "Error: no backup named emqx-export-2019-01-01"},
        {["backup_restore", "uploaded.tar.gz"], "Error: uploaded.tar.gz is not an EMQX export name"},
        {["backup_restore", "../" ++ Good], "Error: ../" ++ Good ++ " is not an EMQX export name"},
        {["backup_restore", Corrupt], "Error: " ++ Corrupt ++ " does not verify: "},
        {["backup_restore", Newer], "Error: the backup is from EMQX 5.4.0, newer than this node's 5.3.2"},
        {["backup_restore", Enterprise], "Error: an EMQX Enterprise backup cannot be imported into EMQX ce 5.3.2"},
        {["backup_restore", Good, "--exact"], "Error: --exact is not available: EMQX's import merges"},
        {["backup_restore", Good, "--remote"], "Error: no off-site destination is set"},
        {["backup_restore"], "Error: expected backup_restore <name>"},
        {["backup_restore", Good, "--bogus"], "Error: expected backup_restore <name>"}
    ],
    lists:foreach(
        fun({Args, Expected}) ->
            Out = ctl(Args),
            [Error] = [L || "Error: " ++ _ = L <- Out],
            ?assert(lists:prefix(Expected, Error), {Args, Out}),
            ?assertEqual(Before, {backups(), file:list_dir(Dir), emqx_guard_standin_db:rows(emqx_banned)}, Args)
        end,
        Cases
    ),
    ?assertEqual(0, emqx_mgmt_data_backup:import_count()),
    ?assertEqual(undefined, emqx_guard_restore_state:last()),
    ?assertEqual([], emqx_alarm:active_alarms()),
    %% the interface says the same with tagged reasons
    ?assertMatch({error, {restore_refused, {newer_version, #{backup := <<"5.4.0">>}}}},
                 emqx_guard_restore:restore(list_to_binary(Newer), #{})),
    ?assertMatch({error, {restore_refused, {edition_refused, _}}}, emqx_guard_restore:restore(list_to_binary(Enterprise), #{})).

%% On a replicant node EMQX does not import: refused before anything, in one line.
replicant_is_refused(_Config) ->
    seed(),
    Name = backup_now(),
    Before = backups(),
    ok = mria_rlog:set_role(replicant),
    Out = ctl(["backup_restore", Name]),
    ?assertMatch(["Error: " ++ _], [L || "Error: " ++ _ = L <- Out], Out),
    ?assertNotEqual(nomatch, string:find(lists:last(Out), "is a replicant node: EMQX imports backups on core nodes only (not_core_node)")),
    ?assertEqual(Before, backups()),
    ?assertEqual(0, emqx_mgmt_data_backup:import_count()).

%% EMQX's import fails for one table after the rest was applied: the restore says so at the
%% import step, counts as failed, keeps the safety backup (held by retention), raises the backup
%% alarm, sends `restore_failed' and records it for `backup_status'.
failing_import_keeps_safety_backup_alarms_and_notifies(_Config) ->
    {Url, Listener} = start_http(),
    ?assertMatch(["notify_webhook_url = " ++ _ | _], ctl(["notify_webhook", Url])),
    seed(),
    Name = backup_now(),
    ok = emqx_guard_standin_db:write({emqx_banned, <<"client-1">>, <<"changed">>}),
    ok = emqx_mgmt_data_backup:set_import_mode({table_error, emqx_banned, boom}),
    Out = ctl(["backup_restore", Name]),
    [Safety] = backups() -- [Name],
    %% as EMQX prints it (io_lib's ~p wraps the reason as it does on EMQX's console)
    ?assertMatch([_], [L || "[error] Failed to import built-in database table: emqx_banned, reason: {error," ++ _ = L <- Out], Out),
    ?assert(lists:member("Data has been imported, but some errors occurred, see the log above.", Out), Out),
    [Error] = [L || "Error: " ++ _ = L <- Out],
    ?assert(lists:prefix("Error: import: EMQX applied the backup in part: table emqx_banned: boom", Error), Error),
    ?assertEqual("The safety backup " ++ Safety ++ " is kept: emqx ctl guard backup_restore " ++ Safety ++
                 " brings the state from before back (merged, as every import).", lists:last(Out)),
    %% the other tables were applied (the admin table came back), this one not
    ?assertEqual([{emqx_banned, <<"client-1">>, <<"changed">>}, {emqx_banned, <<"client-2">>, <<"original">>}],
                 emqx_guard_standin_db:rows(emqx_banned)),
    ?assertEqual([list_to_binary(Safety)], emqx_guard_restore_state:held()),
    [#{name := ?ALARM, message := Message}] = emqx_alarm:active_alarms(),
    ?assertMatch(<<"emqx_guard: restore failed: import: EMQX applied the backup in part", _/binary>>, Message),
    [StatusLine] = [L || "last restore: " ++ _ = L <- ctl(["backup_status"])],
    ?assertNotEqual(nomatch, string:find(StatusLine, ": FAILED at import: import: EMQX applied the backup in part")),
    %% the notification: restore_failed with the file, the step and the safety backup
    Doc = json_decode(receive_request(Listener)),
    ?assertEqual(<<"restore_failed">>, maps:get(<<"event">>, Doc)),
    ?assertEqual(list_to_binary(Name), maps:get(<<"file">>, Doc)),
    ?assertMatch(<<"[emqx_guard] restore FAILED on ", _/binary>>, maps:get(<<"summary">>, Doc)),
    ?assertEqual(list_to_binary(Safety), maps:get(<<"safety">>, Doc)),
    ?assertEqual(<<"import">>, maps:get(<<"step">>, Doc)),
    ?assertNotEqual(nomatch, binary:match(maps:get(<<"text">>, Doc), list_to_binary("Safety:       " ++ Safety)), Doc),
    ?assertNotEqual(nomatch, binary:match(maps:get(<<"text">>, Doc), list_to_binary(Safety ++ "  1.5 KiB  (safety backup)")), Doc),
    %% and a good restore afterwards sends restore_done
    ok = emqx_mgmt_data_backup:set_import_mode(ok),
    ?assertMatch("Restored " ++ _, lists:last(ctl(["backup_restore", Name]))),
    Done = json_decode(receive_request(Listener)),
    ?assertEqual(<<"restore_done">>, maps:get(<<"event">>, Done)).

%% The safety backup fails (the disk is full as EMQX exports): the restore stops at its step
%% `safety', before EMQX's import runs, so nothing changes; the backup alarm, the status line and
%% a `restore_failed' notification naming the step say so.
failing_safety_backup_stops_before_the_import(_Config) ->
    {Listener, Name, Before} = backup_then_change(),
    ok = emqx_mgmt_data_backup:set_mode({error, enospc}),
    Out = ctl(["backup_restore", Name]),
    ?assertEqual(0, emqx_mgmt_data_backup:import_count()),
    ?assertEqual(Before, emqx_guard_standin_db:rows(emqx_banned)),
    ?assertEqual([Name], backups()),
    ?assertEqual([], emqx_guard_restore_state:held()),
    [Error] = [L || "Error: " ++ _ = L <- Out],
    ?assert(lists:prefix("Error: safety", Error), Error),
    [#{name := ?ALARM, message := Message}] = emqx_alarm:active_alarms(),
    ?assertMatch(<<"emqx_guard: restore failed: safety", _/binary>>, Message),
    [StatusLine] = [L || "last restore: " ++ _ = L <- ctl(["backup_status"])],
    ?assertNotEqual(nomatch, string:find(StatusLine, ": FAILED at safety"), StatusLine),
    %% two messages, in either order: the safety backup's run failed (a backup run like any, it
    %% says so), and the restore failed at that step
    Docs = [json_decode(receive_request(Listener)) || _ <- [1, 2]],
    [Run] = [D || D = #{<<"event">> := <<"backup_failed">>} <- Docs],
    ?assertEqual(<<"pre_restore">>, maps:get(<<"trigger">>, Run)),
    [Doc] = [D || D = #{<<"event">> := <<"restore_failed">>} <- Docs],
    ?assertEqual(<<"safety">>, maps:get(<<"step">>, Doc)),
    ?assertEqual(list_to_binary(Name), maps:get(<<"file">>, Doc)),
    %% its text does not claim a safety backup or a change that never happened
    Text = maps:get(<<"text">>, Doc),
    ?assertMatch(<<"emqx_guard: a restore FAILED before anything changed: the safety backup could not be taken, "
                   "so EMQX's import did not run.", _/binary>>, Text),
    ?assertNotEqual(nomatch, binary:match(Text, list_to_binary(Name ++ "  1.5 KiB  (the one to restore)")), Text).

%% EMQX's import refuses the backup outright (here a version it does not take, told only when it
%% reads the file): nothing is applied, EMQX's own words are in the error line, the safety
%% backup taken just before is kept and named, the alarm and `restore_failed' (step `import').
import_refused_by_emqx_keeps_safety_backup_and_changes_nothing(_Config) ->
    {Listener, Name, Before} = backup_then_change(),
    ok = emqx_mgmt_data_backup:set_import_mode({error, "Unsupported version: 9.9.9"}),
    Out = ctl(["backup_restore", Name]),
    [Safety] = backups() -- [Name],
    ?assertEqual(Before, emqx_guard_standin_db:rows(emqx_banned)),
    [Error] = [L || "Error: " ++ _ = L <- Out],
    ?assert(lists:prefix("Error: import", Error), Error),
    ?assertNotEqual(nomatch, string:find(Error, "Unsupported version: 9.9.9"), Error),
    ?assertEqual("The safety backup " ++ Safety ++ " is kept: emqx ctl guard backup_restore " ++ Safety ++
                 " brings the state from before back (merged, as every import).", lists:last(Out)),
    ?assertEqual([list_to_binary(Safety)], emqx_guard_restore_state:held()),
    [#{name := ?ALARM, message := Message}] = emqx_alarm:active_alarms(),
    ?assertMatch(<<"emqx_guard: restore failed: import", _/binary>>, Message),
    Doc = json_decode(receive_request(Listener)),
    ?assertEqual(<<"restore_failed">>, maps:get(<<"event">>, Doc)),
    ?assertEqual(<<"import">>, maps:get(<<"step">>, Doc)),
    ?assertEqual(list_to_binary(Safety), maps:get(<<"safety">>, Doc)).

%% An import EMQX fails as a whole (after the safety backup) is told in EMQX's own words for its
%% reason (`format_error/1'), or the reason printed short where EMQX has no words for it.
import_failed_as_a_whole_in_emqx_words(_Config) ->
    seed(),
    Name = backup_now(),
    ok = emqx_mgmt_data_backup:set_import_mode({error, invalid_version}),
    Out = ctl(["backup_restore", Name]),
    Words = "invalid backup archive content: wrong EMQX version value in META.hocon",
    ?assert(lists:member("[error] Data import failed, reason: " ++ Words ++ ".", Out), Out),
    ?assert(lists:member("Error: import: EMQX's import failed: " ++ Words ++ " (the safety backup is kept)", Out), Out),
    ok = emqx_mgmt_data_backup:set_import_mode({error, {boom, 1}}),
    Out2 = ctl(["backup_restore", Name]),
    ?assert(lists:member("[error] Data import failed, reason: {boom,1}.", Out2), Out2),
    ok = emqx_mgmt_data_backup:set_import_mode(ok).

%% EMQX 6.3 on a node of the hardened security profile refuses a backup made before 6.3 (no
%% profile, as legacy) unless its import is told allow_security_profile_mismatch: the preflight
%% refuses it first, naming the setting, before the safety backup; nothing changes. A backup
%% made under hardened is restored; a legacy node takes the old one.
security_profile_mismatch_refused_before_the_safety_backup(_Config) ->
    ok = emqx_release:set("6.2.1", ce),
    seed(),
    Old = backup_now(),
    ok = emqx_release:set("6.3.0", ce),
    ok = emqx_security_profile:set(hardened),
    ok = emqx_guard_standin_db:write({emqx_banned, <<"client-1">>, <<"changed">>}),
    Before = emqx_guard_standin_db:rows(emqx_banned),
    [Error] = [L || "Error: " ++ _ = L <- ctl(["backup_restore", Old])],
    ?assertNotEqual(nomatch, string:find(Error, "under the hardened security profile"), Error),
    ?assertNotEqual(nomatch, string:find(Error, "no profile (before EMQX 6.3, as legacy)"), Error),
    ?assertNotEqual(nomatch, string:find(Error, "allow_security_profile_mismatch"), Error),
    ?assertEqual([Error], [L || "Error: " ++ _ = L <- ctl(["backup_restore", Old, "--dry-run"])]),
    ?assertEqual([Old], backups()),
    ?assertEqual(0, emqx_mgmt_data_backup:import_count()),
    ?assertEqual(Before, emqx_guard_standin_db:rows(emqx_banned)),
    %% the stand-in import refuses it as EMQX does, had the preflight let it through
    ?assertMatch({error, security_profile_mismatch}, emqx_mgmt_data_backup:import(list_to_binary(Old), #{})),
    %% made under hardened: restored
    New = backup_now(),
    ?assertMatch("Restored " ++ _, lists:last(ctl(["backup_restore", New]))),
    %% a legacy node takes the old one
    ok = emqx_security_profile:set(legacy),
    ?assertMatch("Restored " ++ _, lists:last(ctl(["backup_restore", Old]))).

%% The EMQX Operator's bootstrap API key (api_key.bootstrap_file) survives a restore whose
%% backup holds another record with that key: the import alone would lock it out (two records
%% with one key), the restore writes the file's keys again.
bootstrap_api_key_is_never_locked_out(Config) ->
    Dir = ?config(data_dir, Config),
    File = filename:join(Dir, "bootstrap_api_keys.txt"),
    ok = file:write_file(File, <<"operator-key:operator-secret\n">>),
    %% the backup: an older record holding the same key under another name and secret
    ok = emqx_guard_standin_db:write(emqx_mgmt_auth:record(<<"legacy">>, <<"operator-key">>, <<"old-secret">>)),
    Name = backup_now(),
    ok = emqx_guard_standin_db:delete(emqx_app, <<"legacy">>),
    ok = emqx_mgmt_auth:set_bootstrap_file(list_to_binary(File)),
    ok = emqx_mgmt_auth:try_init_bootstrap_file(),
    ok = emqx_mgmt_auth:authorize(<<"/api/v5/nodes">>, #{}, <<"operator-key">>, <<"operator-secret">>),
    %% the control: EMQX's import on its own locks the operator out
    {ok, _} = emqx_mgmt_data_backup:import(list_to_binary(Name)),
    ?assertEqual({error, "not_found"}, emqx_mgmt_auth:authorize(<<"/api/v5/nodes">>, #{}, <<"operator-key">>, <<"operator-secret">>)),
    ok = emqx_guard_standin_db:delete(emqx_app, <<"legacy">>),
    ok = emqx_mgmt_auth:try_init_bootstrap_file(),
    %% the restore does not
    Out = ctl(["backup_restore", Name]),
    ?assert(lists:member("api keys: the keys of api_key.bootstrap_file were written again", Out), Out),
    ?assertMatch("Restored " ++ _, lists:last(Out)),
    ?assertEqual(ok, emqx_mgmt_auth:authorize(<<"/api/v5/nodes">>, #{}, <<"operator-key">>, <<"operator-secret">>)).

%% The safety backup is kept by retention (keep 1) while the restore it guarded failed, and
%% until a good backup made after a good restore replaced it.
safety_backup_kept_until_a_later_good_backup(_Config) ->
    ?assertMatch(["backup_keep = " ++ _ | _], ctl(["backup_keep", "1"])),
    seed(),
    Name = backup_now(),
    ok = emqx_mgmt_data_backup:set_import_mode({table_error, emqx_banned, boom}),
    _ = ctl(["backup_restore", Name]),
    %% keep 1, yet the safety backup's run kept the backup being restored
    [Safety1] = backups() -- [Name],
    ?assertEqual(lists:sort([Name, Safety1]), backups()),
    %% the next run prunes the backup restored, never the safety backup of the failed restore
    Later = backup_now(),
    ?assertEqual(lists:sort([Safety1, Later]), backups()),
    ok = emqx_mgmt_data_backup:set_import_mode(ok),
    ?assertMatch("Restored " ++ _, lists:last(ctl(["backup_restore", Later]))),
    [Safety2] = backups() -- [Safety1, Later],
    %% both safety backups stay until a backup made after the good restore
    ?assertEqual(lists:sort([Safety1, Safety2]), lists:sort([binary_to_list(N) || N <- emqx_guard_restore_state:held()])),
    Final = backup_now(),
    ?assertEqual([], emqx_guard_restore_state:held()),
    %% the next run's retention deletes them (keep 1)
    Last = backup_now(),
    ?assertEqual([Last], backups(), Final).

%% The interface the dashboard calls: a dry run's report is a JSON document (it encodes), with
%% the preflight's facts and the result.
dashboard_interface_report_is_json(_Config) ->
    seed(),
    Name = list_to_binary(backup_now()),
    Self = self(),
    {ok, Report} = emqx_guard_restore:restore(Name, #{dry_run => true, report => fun(E) -> Self ! {step, E}, ok end}),
    Json = iolist_to_binary(emqx_guard_json:encode(Report)),
    #{<<"result">> := <<"dry_run">>, <<"preflight">> := #{<<"tables">> := Tables, <<"config_keys">> := Keys}} = json_decode(Json),
    ?assert(lists:member(#{<<"name">> => <<"emqx_banned">>, <<"rows">> => 2}, Tables), Tables),
    ?assertEqual([<<"mqtt">>, <<"retainer">>], Keys),
    receive {step, {started, preflight, #{name := Name}}} -> ok after 0 -> ct:fail(no_preflight_step) end.

%% --remote: the backup and its plugins companion are fetched from S3 (age-encrypted there),
%% decrypted with the identity, checked, and restored: on a node that lost its disk, the plugin
%% comes back too.
remote_restore_from_s3_encrypted(Config) ->
    Out0 = ctl(["backup_remote" | emqx_guard_s3_helper:settings_args(?config(s3, Config)) ++ ["recipient=" ++ recipient()]]),
    ?assertEqual("backup_remote = s3", hd(Out0), Out0),
    seed(),
    _ = install_plugin(<<"my_plugin-1.0.0">>, <<"rate = 10\n">>),
    Name = backup_now(),
    offsite_idle(),
    %% the node lost its disk: the backup, its companion, the plugin
    ok = file:delete(filename:join(emqx_guard_emqx:backup_dir(), Name)),
    ok = file:delete(filename:join(emqx_guard_emqx:backup_dir(), companion(Name))),
    ok = emqx_plugins:reset(),
    ok = file:del_dir_r(emqx_plugins:install_dir()),
    ok = emqx_guard_standin_db:write({emqx_banned, <<"client-1">>, <<"changed">>}),
    %% without the identity: refused, nothing changed
    NoKey = ctl(["backup_restore", Name, "--remote"]),
    ?assertMatch(["Error: cannot decrypt" ++ _], [L || "Error: " ++ _ = L <- NoKey], NoKey),
    ?assertEqual([], backups()),
    Out = ctl(["backup_restore", Name, "--remote", "identity=" ++ identity()]),
    ?assert(lists:any(fun(L) -> lists:prefix("download: done in ", L) end, Out), Out),
    ?assertMatch("Restored " ++ _, lists:last(Out)),
    ?assertEqual({emqx_banned, <<"client-1">>, <<"original">>}, hd(emqx_guard_standin_db:rows(emqx_banned))),
    ?assert(lists:member(Name, backups())),
    %% the companion came down with it (decrypted, checked) and brought the plugin back
    ?assert(filelib:is_regular(filename:join(emqx_guard_emqx:backup_dir(), companion(Name)))),
    ?assertMatch([_], [L || "plugins: my_plugin-1.0.0: installed from the companion" ++ _ = L <- Out], Out),
    ?assertMatch([#{name := <<"my_plugin">>, running_status := running}], emqx_plugins:list()).


%%--------------------------------------------------------------------------------------------
%% The plugins companion

%% Every run saves the installed plugins (package, config, state) and this plugin's settings in
%% a companion beside the export: private, its package's hash recorded and checked, shown by
%% backup_list, deleted by retention with its export and never left alone.
companion_made_private_verified_and_pruned_with_export(_Config) ->
    {Package, Sha} = install_plugin(<<"my_plugin-1.0.0">>, <<"rate = 10\n">>),
    Out = ctl(["backup_now"]),
    [Name] = backups(),
    Companion = filename:join(emqx_guard_emqx:backup_dir(), companion(Name)),
    ?assert(lists:member("plugins: done: 1 plugin(s) and this plugin's settings saved beside it in " ++ companion(Name), Out), Out),
    {ok, #file_info{mode = Mode}} = file:read_file_info(Companion),
    ?assertEqual(8#600, Mode band 8#777),
    {ok, M} = emqx_guard_companion:read(Companion),
    ?assertMatch(#{<<"export">> := _, <<"plugins">> := [#{<<"name_vsn">> := <<"my_plugin-1.0.0">>, <<"enabled">> := true,
        <<"running">> := true, <<"too_large">> := false, <<"config_files">> := [<<"configs/my_plugin/config.hocon">>]}]}, M),
    [#{<<"sha256">> := Sha}] = maps:get(<<"plugins">>, M),
    {ok, Package} = emqx_guard_companion:package(Companion, hd(maps:get(<<"plugins">>, M))),
    {ok, <<"rate = 10\n">>} = emqx_guard_companion:entry(Companion, <<"configs/my_plugin/config.hocon">>),
    %% never an export: EMQX's list (*.tar.gz) and retention's do not see it; backup_list says it
    ?assertNot(emqx_guard_core:is_export_name(companion(Name))),
    [_, Row] = ctl(["backup_list"]),
    ?assert(lists:suffix("  with plugins", Row), Row),
    %% pruned with its export (keep 1)
    [_ | _] = ctl(["backup_keep", "1"]),
    Second = backup_now(),
    ?assertEqual(lists:sort([Second, companion(Second)]), ls()),
    %% an export deleted by hand: its companion goes at the next run, never left alone
    ok = file:delete(filename:join(emqx_guard_emqx:backup_dir(), Second)),
    Third = backup_now(),
    ?assertEqual(lists:sort([Third, companion(Third)]), ls()),
    %% packages over the limit: by name and hash only, and the line says so
    ?assertEqual(["backup_plugins_max_size = \"10 B\" (larger plugin packages: recorded by name and hash only)"],
                 ctl(["backup_plugins_max_size", "10B"])),
    Big = ctl(["backup_now"]),
    ?assertMatch([_], [L || "plugins: done: 1 plugin(s)" ++ _ = L <- Big,
                            lists:suffix("(by name and hash only, larger than the limit: my_plugin-1.0.0)", L)], Big),
    {ok, #{<<"plugins">> := [#{<<"too_large">> := true, <<"package">> := null, <<"sha256">> := Sha}]}} =
        emqx_guard_companion:read(filename:join(emqx_guard_emqx:backup_dir(), companion(hd(backups() -- [Third])))),
    ?assertMatch(["Error: backup_plugins_max_size must be a size" ++ _], ctl(["backup_plugins_max_size", "lots"])).

%% A node without the plugin (rebuilt from the backup): the dry run says it is missing, the
%% restore installs it from the companion, enabled and started as it was, with its config; this
%% plugin's own settings come back too.
restore_installs_missing_plugin_and_its_config(_Config) ->
    {_Package, _Sha} = install_plugin(<<"my_plugin-1.0.0">>, <<"rate = 10\n">>),
    seed(),
    Name = backup_now(),
    %% the node loses the plugin (package, config, state); a setting changes
    ok = emqx_plugins:reset(),
    ok = file:del_dir_r(emqx_plugins:install_dir()),
    ok = file:del_dir_r(filename:join([emqx_guard_emqx:data_dir(), "plugins"])),
    [_ | _] = ctl(["backup_keep", "9"]),
    Dry = ctl(["backup_restore", Name, "--dry-run"]),
    ?assert(lists:member("  my_plugin-1.0.0: missing here: installed from the backup", Dry), Dry),
    ?assert(lists:member("  emqx_guard settings that differ from now: backup_keep", Dry), Dry),
    ?assertEqual([], emqx_plugins:list()),
    Out = ctl(["backup_restore", Name]),
    [Installed] = [L || "plugins: my_plugin-1.0.0: " ++ _ = L <- Out],
    ?assert(lists:prefix("plugins: my_plugin-1.0.0: installed from the companion (sha256 ", Installed), Installed),
    ?assert(lists:suffix("1 config file(s) applied, enabled and started", Installed), Installed),
    ?assert(lists:member("plugins: emqx_guard settings: applied from the backup: backup_keep", Out), Out),
    ?assertMatch("Restored " ++ _, lists:last(Out)),
    ?assertEqual([#{name => <<"my_plugin">>, rel_vsn => <<"1.0.0">>, config_status => enabled, running_status => running}],
                 emqx_plugins:list()),
    ?assertEqual({ok, <<"rate = 10\n">>},
                 file:read_file(filename:join([emqx_guard_emqx:data_dir(), "plugins", "my_plugin", "config.hocon"]))),
    ?assertEqual(5, maps:get(backup_keep, emqx_guard_settings:get())).

%% A companion whose package does not match the hash it recorded: that plugin is refused, the
%% line says so, nothing of it is installed, and the restore counts as failed at its plugins step.
companion_hash_mismatch_is_refused_for_that_plugin(_Config) ->
    {_Package, Sha} = install_plugin(<<"my_plugin-1.0.0">>, <<"rate = 10\n">>),
    Name = backup_now(),
    Companion = filename:join(emqx_guard_emqx:backup_dir(), companion(Name)),
    tamper(Companion, <<"packages/my_plugin-1.0.0.tar.gz">>, <<"not the package">>),
    ok = emqx_plugins:reset(),
    ok = file:del_dir_r(emqx_plugins:install_dir()),
    Out = ctl(["backup_restore", Name]),
    [Refused] = [L || "plugins: my_plugin-1.0.0: " ++ _ = L <- Out],
    ?assertEqual("plugins: my_plugin-1.0.0: REFUSED: its package in the companion has sha256 " ++
                 string:lowercase(binary_to_list(binary:encode_hex(crypto:hash(sha256, <<"not the package">>)))) ++
                 ", the companion recorded " ++ binary_to_list(Sha), Refused),
    [Error] = [L || "Error: " ++ _ = L <- Out],
    ?assert(lists:prefix("Error: plugins: my_plugin-1.0.0: REFUSED", Error), Error),
    ?assertEqual([], emqx_plugins:list()),
    ?assertNot(filelib:is_regular(filename:join(emqx_plugins:install_dir(), "my_plugin-1.0.0.tar.gz"))),
    #{<<"last_restore">> := #{<<"result">> := <<"failed">>, <<"step">> := <<"plugins">>}} = emqx_guard_report:status().

%% EMQX 6.3 wants `emqx ctl plugins allow' before an install: the restore does not go around it,
%% it puts the package and config in place and prints the exact lines to run.
install_gate_gets_the_allow_line(_Config) ->
    {_Package, Sha} = install_plugin(<<"my_plugin-1.0.0">>, <<"rate = 10\n">>),
    Name = backup_now(),
    ok = emqx_plugins:reset(),
    ok = emqx_plugins:set_allow_required(true),
    Out = ctl(["backup_restore", Name]),
    ?assert(lists:member("plugins: my_plugin-1.0.0: not installed: EMQX wants it allowed first (its package and config "
                         "are in place): emqx ctl plugins allow my_plugin-1.0.0 (the hardened profile: emqx ctl plugins "
                         "allow my_plugin-1.0.0 sha256:" ++ binary_to_list(Sha) ++ "), then emqx ctl plugins install "
                         "my_plugin-1.0.0", Out), Out),
    ?assertMatch("Restored " ++ _, lists:last(Out)),
    ?assertEqual([], emqx_plugins:list()),
    %% the lines work
    ok = emqx_plugins:allow(<<"my_plugin-1.0.0">>),
    ok = emqx_plugins:ensure_installed("my_plugin-1.0.0").

%% Off-site, the companion goes up with its export, encrypted the same way (age), and remote
%% retention deletes it with its export; it is never listed or counted as a backup there.
companion_uploaded_encrypted_and_pruned_remotely(Config) ->
    S3 = ?config(s3, Config),
    Out0 = ctl(["backup_remote" | emqx_guard_s3_helper:settings_args(S3) ++ ["recipient=" ++ recipient()]]),
    ?assertEqual("backup_remote = s3", hd(Out0), Out0),
    [_ | _] = ctl(["backup_keep", "2"]),
    _ = install_plugin(<<"my_plugin-1.0.0">>, <<"rate = 10\n">>),
    Names = [begin N = backup_now(), offsite_idle(), N end || _ <- lists:seq(1, 3)],
    [First | Kept] = Names,
    Expected = lists:sort(lists:append([[N ++ ".age", companion(N) ++ ".age"] || N <- Kept])),
    ?assertEqual(Expected, emqx_guard_s3_helper:all_objects(S3)),
    {ok, Stored} = file:read_file(emqx_guard_s3_helper:object_file(S3, "ct/" ++ companion(lists:last(Names)) ++ ".age")),
    ?assertMatch(<<"age-encryption.org/v1", _/binary>>, Stored),
    ?assertNot(lists:member(companion(First) ++ ".age", emqx_guard_s3_helper:all_objects(S3))),
    %% the remote listing shows the backups only
    Listed = [L || "  emqx-export-" ++ _ = L <- ctl(["backup_list", "--remote"])],
    ?assertEqual(2, length(Listed), Listed).

%% Companions and their sweep stay on the top level of data/backup and on their own names: an
%% upload, a hand-made file that only looks like a companion, a namespaced backup (EMQX 6.1.4+,
%% `backup/ns/<ns>/') and a companion there are never touched, by runs or by retention.
companions_never_touch_uploads_hand_made_files_or_namespaces(_Config) ->
    Dir = emqx_guard_emqx:backup_dir(),
    Untouchable = ["my-upload.tar.gz", "notes.plugins.tgz", "emqx-export-x.plugins.tgz",
                   "ns/tenant/emqx-export-2020-01-01-00-00-00.000.tar.gz",
                   "ns/tenant/emqx-export-2020-01-01-00-00-00.000.plugins.tgz",
                   "ns/tenant/emqx-export-2021-01-01-00-00-00.000.plugins.tgz"],
    [begin ok = filelib:ensure_dir(filename:join(Dir, F)), ok = file:write_file(filename:join(Dir, F), F) end
     || F <- Untouchable],
    [_ | _] = ctl(["backup_keep", "1"]),
    _ = [backup_now() || _ <- lists:seq(1, 3)],
    [Last] = backups(),
    ?assertEqual(lists:sort([Last, companion(Last), "emqx-export-x.plugins.tgz"]), ls()),
    [?assertEqual({ok, list_to_binary(F)}, file:read_file(filename:join(Dir, F)), F) || F <- Untouchable],
    %% and no listing counts them
    [Header | Rows] = ctl(["backup_list"]),
    ?assertMatch("1 backup(s) in " ++ _, Header),
    ?assertEqual(1, length(Rows)).

%% A backup run going when the restore wants its safety backup: refused in one line, nothing
%% imported, no alarm, no restore recorded.
backup_running_refuses_and_changes_nothing(_Config) ->
    seed(),
    Name = backup_now(),
    ok = emqx_mgmt_data_backup:set_mode({hang, 3000}),
    Test = self(),
    _ = spawn_link(fun() -> Test ! {backup_now, ctl(["backup_now"])} end),
    ok = emqx_guard_ct_helper:wait_until(fun emqx_mgmt_data_backup:hanging/0),
    Out = ctl(["backup_restore", Name]),
    ?assertMatch(["Error: the safety backup could not start: " ++ _], [L || "Error: " ++ _ = L <- Out], Out),
    ?assertEqual(0, emqx_mgmt_data_backup:import_count()),
    ?assertEqual(undefined, emqx_guard_restore_state:last()),
    receive {backup_now, _} -> ok after 20000 -> ct:fail(backup_now_never_ended) end,
    ?assertEqual([], emqx_alarm:active_alarms()).

%% The export a real EMQX 5.3.2 node made (fixtures/emqx-5.3.2, its name kept): the dry run reads
%% its mnesia backup files as mnesia wrote them (the two dashboard users of emqx_admin) and its
%% empty cluster.hocon, and says there is no plugins companion.
real_5_3_2_export_read_in_the_dry_run(_Config) ->
    Name = "emqx-export-2026-11-27-18-58-45.951.tar.gz",
    Fixture = filename:join([filename:dirname(?FILE), "fixtures", "emqx-5.3.2", Name]),
    Dir = emqx_guard_emqx:backup_dir(),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    {ok, _} = file:copy(Fixture, filename:join(Dir, Name)),
    Out = ctl(["backup_restore", Name, "--dry-run"]),
    ?assert(lists:member("Tables:      emqx_acl (0), emqx_admin (2), emqx_app (0), emqx_authn_mnesia (0), "
                         "emqx_authn_scram_mnesia (0), emqx_banned (0), emqx_psk (0)", Out), Out),
    ?assert(lists:member("Config keys: (none)", Out), Out),
    ?assertMatch([_], [L || "Plugins:     none carried: no plugins companion" ++ _ = L <- Out]),
    ?assertMatch([_], [L || "EMQX:        made by EMQX 5.3.2 ce; " ++ _ = L <- Out]).

%% A table file in the backup that is no mnesia backup (here 1 MiB of random bytes): the dry run
%% shows it without a count and still reads the others; EMQX's import reports that table itself.
table_file_that_is_no_mnesia_backup_is_shown_not_counted(_Config) ->
    seed(),
    ok = emqx_mgmt_data_backup:set_mode({big, 1024 * 1024}),
    Name = backup_now(),
    Out = ctl(["backup_restore", Name, "--dry-run"]),
    [Tables] = [L || "Tables:      " ++ _ = L <- Out],
    ?assertNotEqual(nomatch, string:find(Tables, "emqx_big (unreadable: no mnesia backup file)"), Tables),
    ?assertNotEqual(nomatch, string:find(Tables, "emqx_banned (2)"), Tables).

%% A plugin package as EMQX keeps it in its install_dir, installed, enabled and running, with a
%% config saved as EMQX stores it: the package's bytes and SHA-256.
install_plugin(NameVsn, Config) ->
    Dir = emqx_plugins:install_dir(),
    Package = filename:join(Dir, binary_to_list(NameVsn) ++ ".tar.gz"),
    ok = filelib:ensure_dir(Package),
    Release = <<"{\"name\": \"my_plugin\", \"rel_vsn\": \"1.0.0\"}">>,
    ok = erl_tar:create(Package, [{binary_to_list(NameVsn) ++ "/release.json", Release}], [compressed]),
    ConfFile = filename:join([emqx_guard_emqx:data_dir(), "plugins", "my_plugin", "config.hocon"]),
    ok = filelib:ensure_dir(ConfFile),
    ok = file:write_file(ConfFile, Config),
    ok = emqx_plugins:installed(NameVsn, true, true),
    {ok, Bin} = file:read_file(Package),
    {Bin, string:lowercase(binary:encode_hex(crypto:hash(sha256, Bin)))}.

%% The companion at Path with the entry In's bytes replaced (its manifest kept).
tamper(Path, In, Bytes) ->
    {ok, Entries} = erl_tar:extract(Path, [compressed, memory]),
    Changed = [case N =:= binary_to_list(In) of true -> {N, Bytes}; false -> {N, B} end || {N, B} <- Entries],
    ok = erl_tar:create(Path, Changed, [compressed]).

companion(Name) ->
    binary_to_list(emqx_guard_companion:name(list_to_binary(Name))).

ls() ->
    {ok, Names} = file:list_dir(emqx_guard_emqx:backup_dir()),
    lists:sort([N || N <- Names, lists:prefix("emqx-export-", N)]).

%%--------------------------------------------------------------------------------------------

%% The node's data: two banned clients, an API key, two config root keys.
seed() ->
    ok = emqx_guard_standin_db:write({emqx_banned, <<"client-1">>, <<"original">>}),
    ok = emqx_guard_standin_db:write({emqx_banned, <<"client-2">>, <<"original">>}),
    ok = emqx_guard_standin_db:write(emqx_mgmt_auth:record(<<"ci">>, <<"ci-key">>, <<"ci-secret">>)),
    ok = emqx_guard_standin_db:set_config(<<"mqtt">>, <<"{max_packet_size = 1MB}">>),
    ok = emqx_guard_standin_db:set_config(<<"retainer">>, <<"{enable = true}">>).

%% With the webhook to a receiver here: a backup of the seeded node, then one banned client
%% changed after it. The receiver, the backup's name and the rows as they are now.
backup_then_change() ->
    {Url, Listener} = start_http(),
    ?assertMatch(["notify_webhook_url = " ++ _ | _], ctl(["notify_webhook", Url])),
    seed(),
    Name = backup_now(),
    ok = emqx_guard_standin_db:write({emqx_banned, <<"client-1">>, <<"changed">>}),
    {Listener, Name, emqx_guard_standin_db:rows(emqx_banned)}.

%% One `backup_now' that succeeds: the new backup's name.
backup_now() ->
    Out = emqx_guard_ct_helper:result(ctl(["backup_now"])),
    ?assertMatch("Backup done in " ++ _, hd(Out), Out),
    ["  file: " ++ Path] = [L || "  file: " ++ _ = L <- Out],
    filename:basename(Path).

offsite_idle() ->
    emqx_guard_ct_helper:wait_until(fun() ->
        not lists:any(fun(L) -> lists:prefix("  uploads: uploading", L) orelse lists:prefix("  uploads: looking", L) end,
                      ctl(["backup_status"]))
    end).

recipient() ->
    {ok, R} = file:read_file(data_file("offsite_recipient.txt")),
    binary_to_list(string:trim(R)).

identity() ->
    data_file("offsite_identity.txt").

data_file(Name) ->
    filename:join([filename:dirname(?FILE), "emqx_guard_nif_SUITE_data", Name]).

%% A plain HTTP receiver on 127.0.0.1: answers 200 to every request and sends its body to the test.
start_http() ->
    {ok, L} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false}, {reuseaddr, true}, {packet, http_bin}]),
    {ok, Port} = inet:port(L),
    Test = self(),
    Ref = make_ref(),
    Pid = spawn_link(fun() -> accept(L, Test, Ref) end),
    ok = gen_tcp:controlling_process(L, Pid),
    {"http://127.0.0.1:" ++ integer_to_list(Port) ++ "/hook", Ref}.

accept(L, Test, Ref) ->
    {ok, S} = gen_tcp:accept(L),
    Body = read_request(S, 0),
    ok = gen_tcp:send(S, <<"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n">>),
    _ = gen_tcp:close(S),
    Test ! {Ref, Body},
    accept(L, Test, Ref).

read_request(S, Len) ->
    case gen_tcp:recv(S, 0, 10000) of
        {ok, {http_header, _, 'Content-Length', _, V}} -> read_request(S, binary_to_integer(V));
        {ok, http_eoh} ->
            ok = inet:setopts(S, [{packet, raw}]),
            {ok, Body} = gen_tcp:recv(S, Len, 10000),
            Body;
        {ok, _} -> read_request(S, Len)
    end.

receive_request(Ref) ->
    receive
        {Ref, Body} -> Body
    after 20000 ->
        ct:fail(no_notification)
    end.

json_decode(Bin) ->
    {ok, Doc} = emqx_guard_json:decode(Bin),
    Doc.
