%% @doc TEST-ONLY stand-in for EMQX's data export, `emqx_mgmt_data_backup' (present from EMQX 5.1).
%%
%% EMQX API: `export() == export(#{})', `export(Opts) -> {ok, Info} | {error, Reason}', where
%% `Info = #{filename := FullPath :: binary(), size := Bytes, created_at := RFC3339 :: binary(),
%% created_at_sec := integer(), node := node()}'.
%%
%% It has the structure of EMQX's export (apps/emqx_management, 5.1 to 6.3), so that a real
%% disk error comes back in EMQX's own nested shape:
%% <ol>
%% <li>Outside any try: the name `emqx-export-YYYY-MM-DD-HH-MM-SS.mmm' from the node's LOCAL
%%     time; the directory `<emqx:data_dir()>/backup' (created, `ok = filelib:ensure_path/1'),
%%     or `out_dir' from Opts (EMQX 5.8.5+; NOT created: it must exist, and be a string, as
%%     EMQX appends `".tar.gz"' with `++'); the progress line `"Exporting data to ~p...~n"' with
%%     the tarball's path to Opts' `print_fun' (as every progress line, when one is given);
%%     `erl_tar:open' of `<dir>/<name>.tar.gz' matched
%%     against `{ok, _}' after `erl_tar:format_error/1'. So a failure here RAISES, e.g.
%%     `error({badmatch, {error, "<path>: permission denied"}})'.</li>
%% <li>Inside `try ... catch _:Reason -> {error, Reason} after close, del_dir_r(staging)':
%%     `META.hocon' (`edition = ce' / `version = "5.3.2"') and an empty `cluster.hocon' are added
%%     (`ok = ' of the tar call after `format_error', so a tar write error is
%%     `{error, {badmatch, {error, "<name in archive>: no space left on device"}}}'); then per
%%     table the dump is staged in the staging directory `<dir>/<name>/mnesia/<table>' as
%%     mnesia's backup does (written to `<table>.BUPTMP', renamed at the end; `ok = ' of the
%%     result, so a write error is mnesia's `{badmatch, {error, {'EXIT', {error, {error, {"Tab
%%     copier iteration failed", {error, {file_error, Tmp, Posix}}}}}}}}', an open error
%%     `{badmatch, {error, {'EXIT', {error, {file_error, Tmp, Posix}}}}}'), added to the tarball
%%     and deleted; finally the tarball is closed (`erl_tar:close/1' raises
%%     `{badmatch, {error, Posix}}' when its last write fails).</li>
%% </ol>
%% The tarball holds only file entries (no directory entries) under one top directory named as
%% the file without `.tar.gz'. It is written directly at its final path: a failed export leaves
%% the partial tarball; the staging directory is removed at the end, also on failure, but not
%% when the exporting process is killed. There is no lock: two concurrent exports are not
%% prevented.
%%
%% Versions: compiled as it is, this is EMQX 5.8.5 and later: `parse_export_request/1' exists
%% (it came with `out_dir') and `out_dir' is honoured. Compiled with the macro
%% `EMQX_BEFORE_5_8_5' (a test loads that binary with `code:load_binary/3'), it is EMQX 5.1 to
%% 5.8.4: no `parse_export_request/1', and `out_dir' is ignored (the tarball always goes to
%% `data/backup').
%%
%% Test-control API (stand-in only):
%% <ul>
%% <li>`set_mode(Mode)': how the following exports behave, until changed (default `ok'):
%%   <ul>
%%   <li>`ok': a good export.</li>
%%   <li>`{error, Reason}': returns `{error, Reason}' without writing anything.</li>
%%   <li>`raise': raises `error({badmatch, {error, eacces}})' before writing anything (EMQX
%%       creates the directory outside its try).</li>
%%   <li>`{hang, Ms}' = `{hang, Ms, staging}': sleeps Ms while the first table is staged (the
%%       tarball just opened, nothing of it flushed yet), then finishes normally.
%%       `{hang, Ms, partial}': first adds 1 MiB of random bytes (incompressible, so they reach
%%       the disk) and then hangs the same way. `{hang, Ms, complete}': sleeps after the tarball
%%       was closed (complete) and before returning, the staging directory still there. Killed
%%       while sleeping, it leaves all of it behind. `hanging()' is true while one sleeps.</li>
%%   <li>`partial': leaves a truncated tarball at the final path and returns
%%       `{error, {badmatch, {error, "i/o error"}}}'.</li>
%%   <li>`partial_raise': leaves a truncated tarball and raises that error instead.</li>
%%   <li>`{disk_error, Where, Posix}': the write at Where fails with Posix as the disk would
%%       make it (the tarball left cut to its first third, as a full disk leaves it), and EMQX's
%%       shape for it comes back: `open' (raised, see above), `mnesia' (the first table's dump),
%%       `tar' (adding the first table to the tarball), `close' (the tarball's last write).</li>
%%   <li>`disk_full' = `{disk_error, tar, enospc}'.</li>
%%   <li>`wrong_top_dir': returns ok for a complete tarball whose top directory is not its name.</li>
%%   <li>`empty_file': returns ok for an empty file.</li>
%%   <li>`{big, Bytes}': a good export with one more table dump of Bytes random bytes (the
%%       tarball is about that big: random data does not compress).</li>
%%   </ul></li>
%% <li>`mode()': the current mode. `export_count()': how many exports were called since
%%     `reset()'. `last_export_pid()': the process that ran the latest export (or `undefined').</li>
%% <li>`reset()': mode `ok', count 0.</li>
%% </ul>
%% EMQX 5.0 has no such module: a test simulates it with `code:purge/1' + `code:delete/1'
%% (and `code:ensure_loaded/1' to bring it back).
%%
%% <b>Import</b> (`import(FileName)' == `import(FileName, #{})', `import(FileName, Opts) ->
%% {ok, #{db_errors := #{Tab => {error, _}}, config_errors := #{Path => {error, _}}}} |
%% {error, Reason}'), shaped as EMQX's (apps/emqx_management, 5.1 to 6.3), the awkward parts
%% included:
%% <ol>
%% <li>Refusals before anything changes: `not_core_node' (`mria_rlog:role()' is not `core'),
%%     `bad_backup_name' (a path, or a name without `.tar.gz'), `not_found' (no such file in
%%     `data/backup'), `bad_archive_dir' (an entry outside the top directory named as the file),
%%     `missing_backup_meta', `invalid_edition', `ee_to_ce_backup' (an Enterprise backup on open
%%     source), `{unsupported_version, V}' (EMQX's own rule: refused when the backup's major OR
%%     minor number is greater than this node's, `emqx_release:version()'), a tar that does not
%%     read (`erl_tar''s reason as text). The progress lines go to Opts' `print_fun' as EMQX
%%     words them: `"Importing data from ~p...~n"' first, with the full path.</li>
%% <li>Then it merges: each root key of `cluster.hocon' replaces that key's value
%%     (`"Importing cluster configuration...~n"'); each table file's records are written over
%%     the node's (`emqx_guard_standin_db:write/1': an upsert, records not in the backup stay)
%%     after `"Importing built-in database...~n"' and `"Importing ~p database table...~n"'
%%     per table.</li>
%% <li>It can succeed in part: `set_import_mode({table_error, Tab, Reason})' makes that table
%%     fail after the tables before it were applied (`"[error] Failed to import built-in
%%     database table: ~p, reason: ~p~n"', `db_errors'), `{config_error, Key, Reason}' a
%%     config root key (`"Failed to import the following config path: ~p, reason: ~p~n"',
%%     `config_errors'); the answer is still `{ok, _}'. `{error, Reason}' fails the whole
%%     import with Reason after the refusals (nothing applied); `raise' raises inside it,
%%     which EMQX catches as `{error, Reason}'.</li>
%% </ol>
%% The extracted directory `data/backup/<name>/' is removed afterwards, also on failure.
%% `import_count()' counts the imports that got past the refusals.
-module(emqx_mgmt_data_backup).

-include_lib("kernel/include/file.hrl").

-export([export/0, export/1, import/1, import/2, format_error/1]).
-ifndef(EMQX_BEFORE_5_8_5).
-export([parse_export_request/1]).
-endif.
-export([set_mode/1, mode/0, export_count/0, last_export_pid/0, hanging/0, reset/0]).
-export([set_import_mode/1, import_count/0]).

-type mode() ::
    ok
    | {error, term()}
    | raise
    | {hang, non_neg_integer()}
    | {hang, non_neg_integer(), staging | partial | complete}
    | partial
    | partial_raise
    | {disk_error, open | mnesia | tar | close, atom()}
    | disk_full
    | wrong_top_dir
    | empty_file
    | {big, pos_integer()}.

-export_type([mode/0]).

-define(MODE_KEY, {?MODULE, mode}).
-define(COUNTER_KEY, {?MODULE, counter}).
-define(PID_KEY, {?MODULE, last_pid}).
-define(HANGING_KEY, {?MODULE, hanging}).
-define(TABLES, [emqx_psk, emqx_admin, emqx_authn_mnesia, emqx_acl, emqx_banned, emqx_app]).
-define(TAR_SUFFIX, ".tar.gz").
-define(IMPORT_MODE_KEY, {?MODULE, import_mode}).
-define(IMPORT_COUNT_KEY, {?MODULE, import_count}).

%%--------------------------------------------------------------------
%% EMQX API

-spec export() -> {ok, map()} | {error, term()}.
export() ->
    export(#{}).

-spec export(map()) -> {ok, map()} | {error, term()}.
export(Opts) when is_map(Opts) ->
    counters:add(counter(), 1, 1),
    persistent_term:put(?PID_KEY, self()),
    case mode() of
        {error, Reason} ->
            {error, Reason};
        raise ->
            error({badmatch, {error, eacces}});
        empty_file ->
            {BackupName, Fd} = prepare(ok, Opts),
            _ = erl_tar:close(Fd),
            Tar = BackupName ++ ?TAR_SUFFIX,
            ok = file:write_file(Tar, <<>>),
            info(Tar);
        disk_full ->
            run({disk_error, tar, enospc}, Opts);
        {hang, Ms} ->
            run({hang, Ms, staging}, Opts);
        Mode ->
            run(Mode, Opts)
    end.

-ifndef(EMQX_BEFORE_5_8_5).
%% @doc EMQX 5.8.5+: the HTTP/CLI export request as export options (here only `out_dir').
-spec parse_export_request(map()) -> {ok, map()}.
parse_export_request(Params) ->
    case maps:find(<<"out_dir">>, Params) of
        {ok, OutDir} -> {ok, #{out_dir => OutDir}};
        error -> {ok, #{}}
    end.
-endif.

%%--------------------------------------------------------------------
%% Test control

%% @doc Stand-in only: how the following exports behave.
-spec set_mode(mode()) -> ok.
set_mode(Mode) ->
    persistent_term:put(?MODE_KEY, Mode).

-spec mode() -> mode().
mode() ->
    persistent_term:get(?MODE_KEY, ok).

%% @doc Stand-in only: exports called since the last `reset/0'.
-spec export_count() -> non_neg_integer().
export_count() ->
    counters:get(counter(), 1).

%% @doc Stand-in only: the process that ran the latest export.
-spec last_export_pid() -> pid() | undefined.
last_export_pid() ->
    persistent_term:get(?PID_KEY, undefined).

%% @doc Stand-in only: true while an export sleeps in a `hang' mode.
-spec hanging() -> boolean().
hanging() ->
    case persistent_term:get(?HANGING_KEY, undefined) of
        Pid when is_pid(Pid) -> is_process_alive(Pid);
        undefined -> false
    end.

%% @doc Stand-in only: mode `ok', count 0, no last pid.
-spec reset() -> ok.
reset() ->
    set_mode(ok),
    counters:put(counter(), 1, 0),
    _ = persistent_term:erase(?PID_KEY),
    _ = persistent_term:erase(?HANGING_KEY),
    _ = persistent_term:erase(?IMPORT_MODE_KEY),
    _ = persistent_term:erase(?IMPORT_COUNT_KEY),
    ok.

%%--------------------------------------------------------------------
%% internal: the export, shaped as EMQX's

counter() ->
    case persistent_term:get(?COUNTER_KEY, undefined) of
        undefined ->
            C = counters:new(1, []),
            persistent_term:put(?COUNTER_KEY, C),
            C;
        C ->
            C
    end.

run(Mode, Opts) ->
    {BackupName, Fd} = prepare(Mode, Opts),
    try
        do_export(Mode, BackupName, Fd, Opts)
    catch
        %% (`partial_raise' is the one mode that gets out, see its doc)
        _Class:Reason when Mode =/= partial_raise ->
            {error, Reason}
    after
        _ = try erl_tar:close(Fd) catch _:_ -> ok end,
        _ = file:del_dir_r(BackupName),
        cut_after_disk_error(Mode, BackupName ++ ?TAR_SUFFIX)
    end.

%% Outside EMQX's try: a failure raises.
prepare(Mode, Opts) ->
    Ts = erlang:system_time(millisecond),
    {{Y, Mo, D}, {H, Mi, S}} = calendar:system_time_to_local_time(Ts, millisecond),
    Base = lists:flatten(
        io_lib:format(
            "emqx-export-~4..0b-~2..0b-~2..0b-~2..0b-~2..0b-~2..0b.~3..0b",
            [Y, Mo, D, H, Mi, S, Ts rem 1000]
        )
    ),
    BackupName = filename:join(backup_dir(Opts), Base),
    Tar = BackupName ++ ?TAR_SUFFIX,
    maybe_print("Exporting data to ~p...~n", [Tar], Opts),
    Opened =
        case Mode of
            {disk_error, open, Posix} -> {error, {Tar, Posix}};
            _ -> erl_tar:open(Tar, [write, compressed])
        end,
    {ok, Fd} = format_tar_error(Opened),
    {BackupName, Fd}.

-ifdef(EMQX_BEFORE_5_8_5).
backup_dir(_Opts) ->
    root_backup_dir().
-else.
backup_dir(Opts) ->
    case maps:find(out_dir, Opts) of
        {ok, OutDir} -> OutDir;
        error -> root_backup_dir()
    end.
-endif.

root_backup_dir() ->
    Dir = filename:join(emqx:data_dir(), "backup"),
    ok = filelib:ensure_path(Dir),
    Dir.

do_export(Mode, BackupName, Fd, Opts) ->
    Base = filename:basename(BackupName),
    Top =
        case Mode of
            wrong_top_dir -> "emqx-export-1999-01-01-00-00-00.000";
            _ -> Base
        end,
    %% 6.3 and later record the node's security profile
    Profile = [["security_profile = \"", atom_to_list(emqx_security_profile:profile()), "\"\n"] || from_6_3(emqx_release:version())],
    Meta = iolist_to_binary(["edition = ", atom_to_list(emqx_release:edition()), "\nversion = \"", emqx_release:version(), "\"\n", Profile]),
    ok = format_tar_error(erl_tar:add(Fd, Meta, filename:join(Top, "META.hocon"), [])),
    maybe_print("Exporting cluster configuration...~n", [], Opts),
    Conf = [[K, " = ", V, "\n"] || {K, V} <- lists:sort(maps:to_list(emqx_guard_standin_db:config()))],
    ok = format_tar_error(erl_tar:add(Fd, iolist_to_binary(Conf), filename:join(Top, "cluster.hocon"), [])),
    maybe_print("Exporting built-in database...~n", [], Opts),
    case Mode of
        {hang, _, partial} ->
            ok = format_tar_error(erl_tar:add(Fd, crypto:strong_rand_bytes(1024 * 1024), filename:join([Top, "mnesia", "emqx_big"]), []));
        _ ->
            ok
    end,
    lists:foreach(
        fun(Tab) ->
            maybe_print("Exporting ~p database table...~n", [Tab], Opts),
            export_tab(Mode, Fd, Tab, BackupName, Top)
        end,
        ?TABLES
    ),
    case Mode of
        {big, Bytes} -> ok = format_tar_error(erl_tar:add(Fd, crypto:strong_rand_bytes(Bytes), filename:join([Top, "mnesia", "emqx_big"]), []));
        _ -> ok
    end,
    Tar = BackupName ++ ?TAR_SUFFIX,
    case Mode of
        {disk_error, close, Posix} -> error({badmatch, {error, Posix}});
        _ -> ok = format_tar_error(erl_tar:close(Fd))
    end,
    case Mode of
        {hang, Ms, complete} -> hang(Ms);
        _ -> ok
    end,
    finish(Mode, Tar, Base).

export_tab(Mode, Fd, Tab, BackupName, Top) ->
    First = Tab =:= hd(?TABLES),
    Dump = filename:join([BackupName, "mnesia", atom_to_list(Tab)]),
    ok = filelib:ensure_dir(Dump),
    ok = backup_checkpoint(Dump, table_items(Tab), fail_at(Mode, mnesia, First)),
    case Mode of
        {hang, Ms, At} when First, At =/= complete -> hang(Ms);
        _ -> ok
    end,
    NameInArchive = filename:join([Top, "mnesia", atom_to_list(Tab)]),
    Added =
        case fail_at(Mode, tar, First) of
            undefined -> erl_tar:add(Fd, Dump, NameInArchive, []);
            Posix -> {error, {NameInArchive, Posix}}
        end,
    ok = format_tar_error(Added),
    _ = file:delete(Dump),
    ok.

fail_at({disk_error, Where, Posix}, Where, true) -> Posix;
fail_at(_Mode, _Where, _First) -> undefined.

%% What `mnesia:backup_checkpoint/2' does with EMQX's per-table checkpoint: the dump (a disk_log
%% of mnesia's backup items: the log header, the table's schema, its records) is written to
%% `<Dump>.BUPTMP' and renamed to Dump when complete; errors in mnesia's shapes.
backup_checkpoint(Dump, Items, FailWith) ->
    Tmp = Dump ++ ".BUPTMP",
    case file:open(Tmp, [write, raw, binary]) of
        {ok, F} ->
            _ = file:close(F),
            Written =
                case FailWith of
                    undefined -> write_log(Tmp, Items);
                    Posix -> {error, Posix}
                end,
            case Written of
                ok ->
                    ok = file:rename(Tmp, Dump);
                {error, Why} ->
                    {error, {'EXIT', {error, {error, {"Tab copier iteration failed", {error, {file_error, Tmp, Why}}}}}}}
            end;
        {error, Why} ->
            {error, {'EXIT', {error, {file_error, Tmp, Why}}}}
    end.

write_log(File, Items) ->
    {ok, Log} = disk_log:open([{name, make_ref()}, {file, File}, {repair, truncate}, {mode, read_write}]),
    try
        disk_log:log_terms(Log, Items)
    after
        _ = disk_log:close(Log)
    end.

hang(Ms) ->
    persistent_term:put(?HANGING_KEY, self()),
    timer:sleep(Ms),
    _ = persistent_term:erase(?HANGING_KEY),
    _ = persistent_term:erase(?IMPORT_MODE_KEY),
    _ = persistent_term:erase(?IMPORT_COUNT_KEY),
    ok.

%% A table's backup items: the node's rows of it (`emqx_guard_standin_db'), or, for a table no
%% test wrote, 8 records of random bytes.
table_items(Tab) ->
    Records =
        case emqx_guard_standin_db:rows(Tab) of
            [] -> [{Tab, N, crypto:strong_rand_bytes(16)} || N <- lists:seq(1, 8)];
            Rows -> Rows
        end,
    Header = {log_header, backup_log, "1.2", "4.21.3", node(), erlang:timestamp()},
    [Header, {schema, Tab, [{name, Tab}, {type, set}, {record_name, Tab}]} | Records].

finish(partial, Tar, _Base) ->
    ok = truncate(Tar, 1, 2),
    {error, {badmatch, {error, "i/o error"}}};
finish(partial_raise, Tar, _Base) ->
    ok = truncate(Tar, 1, 2),
    error({badmatch, {error, "i/o error"}});
finish(_Mode, Tar, _Base) ->
    info(Tar).

%% A simulated disk error leaves what a full disk would: the tarball cut short.
cut_after_disk_error({disk_error, Where, _}, Tar) when Where =/= open ->
    _ = truncate(Tar, 1, 3),
    ok;
cut_after_disk_error(_Mode, _Tar) ->
    ok.

maybe_print(Format, Args, #{print_fun := PrintFun}) ->
    PrintFun(Format, Args);
maybe_print(_Format, _Args, _Opts) ->
    ok.

format_tar_error({error, Reason}) -> {error, erl_tar:format_error(Reason)};
format_tar_error(Other) -> Other.

%% Keeps the first Num/Den of the file.
truncate(Path, Num, Den) ->
    {ok, #file_info{size = Size}} = file:read_file_info(Path),
    {ok, Fd} = file:open(Path, [read, write, raw, binary]),
    try
        {ok, _} = file:position(Fd, (Size * Num) div Den),
        file:truncate(Fd)
    after
        ok = file:close(Fd)
    end.

info(Tar) ->
    {ok, #file_info{size = Size, ctime = CTime}} = file:read_file_info(Tar, [{time, posix}]),
    {ok, #{
        filename => unicode:characters_to_binary(Tar),
        size => Size,
        created_at => list_to_binary(calendar:system_time_to_rfc3339(CTime, [{unit, second}])),
        created_at_sec => CTime,
        node => node()
    }}.

%%--------------------------------------------------------------------
%% Import, shaped as EMQX's

-spec import(file:filename_all()) -> {ok, map()} | {error, term()}.
import(FileName) ->
    import(FileName, #{}).

-spec import(file:filename_all(), map()) -> {ok, map()} | {error, term()}.
import(FileName, Opts) ->
    case mria_rlog:role() of
        core ->
            case backup_path(FileName) of
                {ok, Path} ->
                    case filelib:is_regular(Path) of
                        true -> do_import(Path, Opts);
                        false -> {error, not_found}
                    end;
                Error ->
                    Error
            end;
        _ ->
            {error, not_core_node}
    end.

%% @doc EMQX's words for an import's reason (`format_error/1' of EMQX, the CLI prints it).
-spec format_error(term()) -> term().
format_error(not_core_node) ->
    lists:flatten(io_lib:format("backup data import is only allowed on core EMQX nodes, but requested node ~p is not core", [node()]));
format_error(ee_to_ce_backup) -> "importing EMQX Enterprise data backup to EMQX is not allowed";
format_error(missing_backup_meta) -> "invalid backup archive file: missing META.hocon";
format_error(invalid_edition) -> "invalid backup archive content: wrong EMQX edition value in META.hocon";
format_error(invalid_version) -> "invalid backup archive content: wrong EMQX version value in META.hocon";
format_error(bad_archive_dir) -> "invalid backup archive content: all files in the archive must be under <backup name> directory";
format_error(not_found) -> "backup file not found";
format_error(bad_backup_name) -> "invalid backup name: file name must have .tar.gz extension";
format_error({unsupported_version, V}) ->
    lists:flatten(io_lib:format("[warning] Backup version ~p is newer than EMQX version ~p, import is not allowed.~n", [V, emqx_release:version()]));
format_error(Reason) -> Reason.

%% @doc Stand-in only: how the following imports behave (see the module doc).
-spec set_import_mode(ok | {table_error, atom(), term()} | {config_error, binary(), term()} | {error, term()} | raise) -> ok.
set_import_mode(Mode) ->
    persistent_term:put(?IMPORT_MODE_KEY, Mode).

%% @doc Stand-in only: imports that got past the refusals since `reset/0'.
-spec import_count() -> non_neg_integer().
import_count() ->
    persistent_term:get(?IMPORT_COUNT_KEY, 0).

backup_path(FileName) ->
    Name = unicode:characters_to_list(FileName),
    case filename:split(Name) of
        [Name] ->
            case filename:basename(Name, ?TAR_SUFFIX) ++ ?TAR_SUFFIX =:= Name of
                true -> {ok, filename:join(root_backup_dir(), Name)};
                false -> {error, bad_backup_name}
            end;
        _ ->
            {error, bad_backup_name}
    end.

do_import(Path, Opts) ->
    maybe_print("Importing data from ~p...~n", [Path], Opts),
    Base = filename:basename(Path, ?TAR_SUFFIX),
    Dir = filename:join(root_backup_dir(), Base),
    try
        case validate(Path, Base, Dir) of
            ok ->
                persistent_term:put(?IMPORT_COUNT_KEY, import_count() + 1),
                case persistent_term:get(?IMPORT_MODE_KEY, ok) of
                    {error, Reason} -> {error, Reason};
                    raise -> error({badmatch, {error, import_raised}});
                    Mode -> {ok, #{config_errors => import_conf(Dir, Mode, Opts), db_errors => import_tabs(Dir, Mode, Opts)}}
                end;
            Error ->
                Error
        end
    catch
        _:Why -> {error, Why}
    after
        _ = file:del_dir_r(Dir)
    end.

validate(Path, Base, Dir) ->
    case format_tar_error(erl_tar:table(Path, [compressed])) of
        {ok, Names} ->
            case lists:all(fun(N) -> hd(filename:split(N)) =:= Base end, Names) of
                false ->
                    {error, bad_archive_dir};
                true ->
                    ok = format_tar_error(erl_tar:extract(Path, [{cwd, root_backup_dir()}, compressed])),
                    check_meta(file:read_file(filename:join(Dir, "META.hocon")))
            end;
        Error ->
            Error
    end.

check_meta({ok, Meta}) ->
    Get = fun(K) ->
        case re:run(Meta, ["^", K, "\\s*=\\s*\"?([^\"\\n]*)\"?\\s*$"], [multiline, {capture, all_but_first, list}]) of
            {match, [V]} -> V;
            nomatch -> undefined
        end
    end,
    case {Get("edition"), Get("version")} of
        {E, V} when E =:= undefined; V =:= undefined -> {error, missing_backup_meta};
        {"ee", V} -> check_profile(check_version_of(ee, V), Get("security_profile"));
        {"ce", V} -> check_profile(check_version_of(ce, V), Get("security_profile"));
        _ -> {error, invalid_edition}
    end;
check_meta(_) ->
    {error, missing_backup_meta}.

%% 6.3 and later: a hardened node refuses a backup made under legacy or without a profile (this
%% stand-in is never told allow_security_profile_mismatch, as the plugin never tells it).
check_profile(ok, Made) ->
    case from_6_3(emqx_release:version()) andalso emqx_security_profile:profile() =:= hardened andalso Made =/= "hardened" of
        true -> {error, security_profile_mismatch};
        false -> ok
    end;
check_profile(Error, _Made) ->
    Error.

from_6_3(Version) ->
    case major_minor(Version) of
        {Ma, Mi} -> Ma > 6 orelse (Ma =:= 6 andalso Mi >= 3);
        error -> false
    end.

check_version_of(ee, V) ->
    case emqx_release:edition() of
        ce -> {error, ee_to_ce_backup};
        ee -> check_version(V)
    end;
check_version_of(ce, V) ->
    check_version(V).

check_version(V) ->
    case {major_minor(V), major_minor(emqx_release:version())} of
        {{Ma, Mi}, {NMa, NMi}} when Ma > NMa; Mi > NMi -> {error, {unsupported_version, V}};
        {{_, _}, {_, _}} -> ok;
        _ -> {error, invalid_version}
    end.

major_minor(V) ->
    case string:split(V, ".", all) of
        [Ma, Mi | _] ->
            try {list_to_integer(Ma), list_to_integer(Mi)} catch _:_ -> error end;
        _ ->
            error
    end.

import_conf(Dir, Mode, Opts) ->
    case file:read_file(filename:join(Dir, "cluster.hocon")) of
        {ok, Bin} ->
            maybe_print("Importing cluster configuration...~n", [], Opts),
            Pairs = [list_to_tuple(string:split(L, <<" = ">>)) || L <- binary:split(Bin, <<"\n">>, [global]), L =/= <<>>],
            lists:foldl(
                fun
                    ({Key, _}, Errors) when element(1, Mode) =:= config_error, element(2, Mode) =:= Key ->
                        Err = {error, element(3, Mode)},
                        maybe_print("Failed to import the following config path: ~p, reason: ~p~n", [binary_to_list(Key), Err], Opts),
                        Errors#{[Key] => Err};
                    ({Key, Value}, Errors) ->
                        ok = emqx_guard_standin_db:set_config(Key, Value),
                        Errors;
                    (_, Errors) ->
                        Errors
                end,
                #{},
                Pairs
            );
        {error, _} ->
            maybe_print("No cluster configuration to be imported.~n", [], Opts),
            #{}
    end.

import_tabs(Dir, Mode, Opts) ->
    maybe_print("Importing built-in database...~n", [], Opts),
    lists:foldl(
        fun(Tab, Errors) ->
            File = filename:join([Dir, "mnesia", atom_to_list(Tab)]),
            case filelib:is_regular(File) of
                false ->
                    maybe_print("No backup file for ~p database table...~n", [Tab], Opts),
                    Errors;
                true when Mode =:= {table_error, Tab, element(3, Mode)} ->
                    maybe_print("Importing ~p database table...~n", [Tab], Opts),
                    Err = {error, element(3, Mode)},
                    maybe_print("[error] Failed to import built-in database table: ~p, reason: ~p~n", [Tab, Err], Opts),
                    Errors#{Tab => Err};
                true ->
                    maybe_print("Importing ~p database table...~n", [Tab], Opts),
                    [emqx_guard_standin_db:write(R) || R <- read_log(File), element(1, R) =:= Tab],
                    Errors
            end
        end,
        #{},
        lists:reverse(?TABLES)
    ).

read_log(File) ->
    {ok, Log} = disk_log:open([{name, make_ref()}, {file, File}, {mode, read_only}, {repair, false}]),
    try
        read_chunks(Log, start, [])
    after
        _ = disk_log:close(Log)
    end.

read_chunks(Log, Cont, Acc) ->
    case disk_log:chunk(Log, Cont) of
        eof -> lists:append(lists:reverse(Acc));
        {Cont1, Terms} -> read_chunks(Log, Cont1, [Terms | Acc]);
        {Cont1, Terms, _Bad} -> read_chunks(Log, Cont1, [Terms | Acc])
    end.
