%% @doc TEST-ONLY stand-in for EMQX's data export, `emqx_mgmt_data_backup' (present from EMQX 5.1).
%%
%% EMQX API: `export() == export(#{})', `export(Opts) -> {ok, Info} | {error, Reason}', where
%% `Info = #{filename := FullPath :: binary(), size := Bytes, created_at := RFC3339 :: binary(),
%% created_at_sec := integer(), node := node()}'. Opts may hold `out_dir' (EMQX 5.8.5+).
%%
%% Like EMQX (apps/emqx_management) it writes a REAL gzip'ed tarball with erl_tar directly at its
%% final path `<emqx:data_dir()>/backup/emqx-export-YYYY-MM-DD-HH-MM-SS.mmm.tar.gz' (node LOCAL
%% time), holding only file entries (no directory entries) under one top directory named as the
%% file without `.tar.gz': `META.hocon' (`edition = ce' / `version = "5.3.2"'), an empty
%% `cluster.hocon' and `mnesia/<table>' files. While it runs, the mnesia dumps are staged in the
%% directory `<backup dir>/<base name>/', removed at the end (also on failure, but not when the
%% exporting process is killed). There is no lock: two concurrent exports are not prevented.
%%
%% Test-control API (stand-in only):
%% <ul>
%% <li>`set_mode(Mode)': how the following exports behave, until changed (default `ok'):
%%   <ul>
%%   <li>`ok': a good export.</li>
%%   <li>`{error, Reason}': returns `{error, Reason}' without writing anything.</li>
%%   <li>`raise': raises `error({badmatch, {error, eacces}})' before writing anything (EMQX
%%       creates the directory and opens the tar outside its try).</li>
%%   <li>`{hang, Ms}': opens the tarball and stages a table, sleeps Ms, then finishes normally;
%%       killed while sleeping, it leaves a partial tarball and the staging directory behind.</li>
%%   <li>`partial': leaves a truncated tarball at the final path and returns
%%       `{error, {badmatch, {error, "i/o error"}}}'.</li>
%%   <li>`partial_raise': leaves a truncated tarball and raises that error instead.</li>
%%   <li>`disk_full': leaves the first part of the tarball and returns what EMQX returns when
%%       erl_tar cannot write: `{error, {badmatch, {error, "<entry>: no space left on device"}}}'.</li>
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
-export([set_mode/1, mode/0, export_count/0, last_export_pid/0, reset/0]).

-type mode() ::
    ok
    | {error, term()}
    | raise
    | {hang, non_neg_integer()}
    | partial
    | partial_raise
    | disk_full
    | wrong_top_dir
    | empty_file
    | {big, pos_integer()}.

-export_type([mode/0]).

-define(MODE_KEY, {?MODULE, mode}).
-define(COUNTER_KEY, {?MODULE, counter}).
-define(PID_KEY, {?MODULE, last_pid}).
-define(TABLES, [emqx_psk, emqx_admin, emqx_authn_mnesia, emqx_acl, emqx_banned, emqx_app]).

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
        Mode ->
            run(Mode, Opts)
    end.

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

%% @doc Stand-in only: mode `ok', count 0, no last pid.
-spec reset() -> ok.
reset() ->
    set_mode(ok),
    counters:put(counter(), 1, 0),
    _ = persistent_term:erase(?PID_KEY),
    ok.

%%--------------------------------------------------------------------
%% internal

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
    Ts = erlang:system_time(millisecond),
    {{Y, Mo, D}, {H, Mi, S}} = calendar:system_time_to_local_time(Ts, millisecond),
    Base = lists:flatten(
        io_lib:format(
            "emqx-export-~4..0b-~2..0b-~2..0b-~2..0b-~2..0b-~2..0b.~3..0b",
            [Y, Mo, D, H, Mi, S, Ts rem 1000]
        )
    ),
    Dir = unicode:characters_to_list(maps:get(out_dir, Opts, filename:join(emqx:data_dir(), "backup"))),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Staging = filename:join(Dir, Base),
    Tar = Staging ++ ".tar.gz",
    case Mode of
        empty_file ->
            ok = file:write_file(Tar, <<>>),
            info(Tar);
        _ ->
            {ok, Fd} = erl_tar:open(Tar, [write, compressed]),
            try
                write_entries(Mode, Fd, Base, Staging),
                ok = erl_tar:close(Fd),
                finish(Mode, Tar, Base)
            after
                _ = try erl_tar:close(Fd) catch _:_ -> ok end,
                _ = file:del_dir_r(Staging)
            end
    end.

write_entries(Mode, Fd, Base, Staging) ->
    Top =
        case Mode of
            wrong_top_dir -> "emqx-export-1999-01-01-00-00-00.000";
            _ -> Base
        end,
    Meta = <<"edition = ce\nversion = \"5.3.2\"\n">>,
    ok = erl_tar:add(Fd, Meta, filename:join(Top, "META.hocon"), []),
    ok = erl_tar:add(Fd, <<>>, filename:join(Top, "cluster.hocon"), []),
    lists:foreach(
        fun(Tab) ->
            %% stage the table dump on disk first, as EMQX does with mnesia checkpoints
            Dump = filename:join([Staging, "mnesia", atom_to_list(Tab)]),
            ok = filelib:ensure_dir(Dump),
            ok = file:write_file(Dump, table_dump(Tab)),
            case Mode of
                {hang, Ms} when Tab =:= hd(?TABLES) -> timer:sleep(Ms);
                _ -> ok
            end,
            ok = erl_tar:add(Fd, Dump, filename:join([Top, "mnesia", atom_to_list(Tab)]), []),
            ok = file:delete(Dump)
        end,
        ?TABLES
    ),
    case Mode of
        {big, Bytes} -> ok = erl_tar:add(Fd, crypto:strong_rand_bytes(Bytes), filename:join([Top, "mnesia", "emqx_big"]), []);
        _ -> ok
    end.

table_dump(Tab) ->
    Records = [{Tab, N, crypto:strong_rand_bytes(16)} || N <- lists:seq(1, 8)],
    term_to_binary({log_header, backup_log, "1.2", Tab, Records}).

finish(partial, Tar, _Base) ->
    ok = truncate(Tar, 1, 2),
    {error, {badmatch, {error, "i/o error"}}};
finish(partial_raise, Tar, _Base) ->
    ok = truncate(Tar, 1, 2),
    error({badmatch, {error, "i/o error"}});
finish(disk_full, Tar, Base) ->
    ok = truncate(Tar, 1, 3),
    {error, {badmatch, {error, Base ++ "/mnesia/emqx_admin: no space left on device"}}};
finish(_Mode, Tar, _Base) ->
    info(Tar).

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
