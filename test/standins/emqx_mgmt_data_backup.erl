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
-module(emqx_mgmt_data_backup).

-include_lib("kernel/include/file.hrl").

-export([export/0, export/1]).
-ifndef(EMQX_BEFORE_5_8_5).
-export([parse_export_request/1]).
-endif.
-export([set_mode/1, mode/0, export_count/0, last_export_pid/0, hanging/0, reset/0]).

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
    Meta = <<"edition = ce\nversion = \"5.3.2\"\n">>,
    ok = format_tar_error(erl_tar:add(Fd, Meta, filename:join(Top, "META.hocon"), [])),
    maybe_print("Exporting cluster configuration...~n", [], Opts),
    ok = format_tar_error(erl_tar:add(Fd, <<>>, filename:join(Top, "cluster.hocon"), [])),
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
    ok = backup_checkpoint(Dump, table_dump(Tab), fail_at(Mode, mnesia, First)),
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

%% What `mnesia:backup_checkpoint/2' does with EMQX's per-table checkpoint: the dump is written
%% to `<Dump>.BUPTMP' (a disk_log) and renamed to Dump when complete; errors in mnesia's shapes.
backup_checkpoint(Dump, Bin, FailWith) ->
    Tmp = Dump ++ ".BUPTMP",
    case file:open(Tmp, [write, raw, binary]) of
        {ok, F} ->
            Written =
                case FailWith of
                    undefined -> file:write(F, Bin);
                    Posix -> {error, Posix}
                end,
            _ = file:close(F),
            case Written of
                ok ->
                    ok = file:rename(Tmp, Dump);
                {error, Why} ->
                    {error, {'EXIT', {error, {error, {"Tab copier iteration failed", {error, {file_error, Tmp, Why}}}}}}}
            end;
        {error, Why} ->
            {error, {'EXIT', {error, {file_error, Tmp, Why}}}}
    end.

hang(Ms) ->
    persistent_term:put(?HANGING_KEY, self()),
    timer:sleep(Ms),
    _ = persistent_term:erase(?HANGING_KEY),
    ok.

table_dump(Tab) ->
    Records = [{Tab, N, crypto:strong_rand_bytes(16)} || N <- lists:seq(1, 8)],
    term_to_binary({log_header, backup_log, "1.2", Tab, Records}).

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
