%% @doc The preflight of a restore (`emqx_guard_restore'): everything checked, and said, before
%% anything changes. In order, the first refusal ending it:
%% <ol>
%% <li>this node is a core node (EMQX imports on cores only: `not_core_node');</li>
%% <li>`exact' is refused: EMQX's import merges, and the import EMQX offers for a call like ours
%%     has no mode that deletes what the backup does not hold (`exact_unavailable');</li>
%% <li>the name is an EMQX export name (`not_an_export'), never a path;</li>
%% <li>the file is in `data/backup' (`no_such_backup'), or, with `remote', is fetched from the
%%     off-site destination into it with the age identity file given (`identity'), as `guard
%%     backup_fetch' does, with its plugins companion (a name already here is refused: restore it
%%     without `remote');</li>
%% <li>it verifies, read in full (`emqx_guard_backups:check/3'; the verdict is recorded);</li>
%% <li>its contents are read (`contents/1'): META.hocon, the root keys of cluster.hocon, each
%%     table with its row count (mnesia's backup files read with disk_log);</li>
%% <li>EMQX's version and edition rules let this node import it, and, on an EMQX that wants
%%     it, every running node runs its major.minor (`emqx_guard_restore_rules').</li>
%% </ol>
%% Its answer is the facts the restore's report shows (`facts()', JSON-able), or the refusal,
%% a tagged term that `emqx_guard_restore_errors' says in words.
-module(emqx_guard_restore_preflight).

-export([run/2, contents/1]).

-export_type([facts/0]).

-type facts() :: #{atom() => term()}.
%% A fetch or a full read may take long: the NIF bounds each request, this the whole.
-define(AWAIT_MS, 6 * 3600 * 1000).
-define(IMPORT_MERGES,
    <<"merge: EMQX's import writes the backup's config keys and table records over this node's and "
      "deletes nothing: records that are not in the backup stay">>).
-define(EXACT_UNAVAILABLE,
    <<"not available: the import EMQX offers merges only (its snapshot mode is internal to EMQX's "
      "emqx_backup_sync plugin)">>).

%% @doc Checks the backup Name for a restore under Opts (`remote', `exact', `identity', `report'):
%% the facts, or why not (nothing changed; with `remote', a fetched file stays in
%% `data/backup', as after `guard backup_fetch').
-spec run(binary(), map()) -> {ok, facts()} | {error, {atom(), term()}}.
run(Name, Opts) ->
    Report = maps:get(report, Opts, fun emqx_guard_steps:noop/1),
    Report({started, preflight, #{name => Name}}),
    Steps = [fun core/2, fun exact/2, fun name/2, fun locate/2, fun verify/2, fun read/2, fun rules/2],
    Done = lists:foldl(
        fun
            (Step, {ok, Facts}) -> Step(Facts, Opts);
            (_Step, Error) -> Error
        end,
        {ok, #{name => Name, import => ?IMPORT_MERGES, exact => ?EXACT_UNAVAILABLE}},
        Steps
    ),
    case Done of
        {ok, Facts} -> Report({done, preflight, maps:with([name, version, edition], Facts)});
        {error, Why} -> Report({failed, preflight, #{duration_ms => 0, error => emqx_guard_restore_errors:format(restore_refused, Why)}})
    end,
    Done.

core(Facts, _Opts) ->
    case emqx_guard_emqx:node_role() of
        core -> {ok, Facts};
        replicant -> {error, {not_core_node, node()}}
    end.

exact(Facts, #{exact := true}) -> {error, {exact_unavailable, maps:get(name, Facts)}};
exact(Facts, _Opts) -> {ok, Facts}.

name(Facts = #{name := Name}, _Opts) ->
    case is_binary(Name) andalso binary:match(Name, [<<"/">>, <<"\\">>, <<0>>]) =:= nomatch andalso
        emqx_guard_core:is_export_name(Name)
    of
        true -> {ok, Facts};
        false -> {error, {not_an_export, Name}}
    end.

locate(Facts = #{name := Name}, Opts) ->
    Dir = emqx_guard_emqx:backup_dir(),
    Path = filename:join(Dir, Name),
    Remote =
        case maps:get(remote, Opts, false) of
            true -> emqx_guard_offsite_config:to_nif(emqx_guard_settings:get());
            false -> local
        end,
    case {filelib:is_regular(Path), Remote} of
        {true, local} -> {ok, Facts#{path => bin(Path), source => <<"local">>}};
        {false, local} -> {error, {no_such_backup, #{name => Name, dir => bin(Dir)}}};
        {_, off} -> {error, {no_destination, off}};
        {true, {ok, _}} -> {error, {already_here, #{name => Name, dir => bin(Dir)}}};
        {false, {ok, Config}} -> fetch(Facts, Config, Dir, Opts)
    end.

fetch(Facts = #{name := Name}, Config, Dir, Opts) ->
    Report = maps:get(report, Opts, fun emqx_guard_steps:noop/1),
    Where = emqx_guard_offsite:where(Config),
    Report({started, download, #{name => Name, destination => Where}}),
    T0 = erlang:monotonic_time(millisecond),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Tick = fun(Ms) -> Report({progress, download, #{phase => checking, elapsed_ms => Ms}}) end,
    Fetched =
        case emqx_guard_core:offsite_fetch_async(Config, Name, maps:get(identity, Opts, undefined), Dir, #{}) of
            {ok, Job} -> emqx_guard_core:await(Job, ?AWAIT_MS, Tick);
            {error, _} = Error -> Error
        end,
    case Fetched of
        {ok, #{path := Path, size := Size} = Got} ->
            Report({done, download, #{duration_ms => emqx_guard_steps:since(T0), size => Size}}),
            {ok, Facts#{path => bin(Path), source => <<"remote">>, destination => Where,
                        encrypted => maps:get(encrypted, Got, false), companion => companion(Config, Name, Dir, Opts)}};
        {error, Why} ->
            {error, {fetch_failed, Why}}
    end.

%% The plugins companion uploaded with the export, fetched the same way (checked against its
%% recorded SHA-256, decrypted): `fetched', `none' (a backup made before companions, or by hand),
%% or why not (the restore then brings back no plugins, and says so).
companion(Config, Name, Dir, Opts) ->
    Companion = emqx_guard_companion:name(Name),
    case filelib:is_regular(filename:join(Dir, Companion)) of
        true ->
            <<"already here">>;
        false ->
            Fetched =
                case emqx_guard_core:offsite_fetch_async(Config, Companion, maps:get(identity, Opts, undefined), Dir, #{}) of
                    {ok, Job} -> emqx_guard_core:await(Job, ?AWAIT_MS);
                    {error, _} = Error -> Error
                end,
            case Fetched of
                {ok, _} -> <<"fetched">>;
                {error, {not_found, _}} -> <<"none">>;
                {error, Why} -> emqx_guard_outcome:format_error(Why)
            end
    end.

verify(Facts = #{path := Path}, Opts) ->
    Report = maps:get(report, Opts, fun emqx_guard_steps:noop/1),
    Size = max(filelib:file_size(Path), 0),
    Report({started, verify, #{file => maps:get(name, Facts), size => Size}}),
    T0 = erlang:monotonic_time(millisecond),
    Tick = fun(Ms) -> Report({progress, verify, #{elapsed_ms => Ms}}) end,
    case emqx_guard_backups:check(Path, emqx_guard_backups:limit(), ?AWAIT_MS, Tick) of
        {ok, Record = #{result := ok, sha256 := Sha, version := Version, edition := Edition}} ->
            ok = emqx_guard_verifications:add([Record]),
            Report({done, verify, #{duration_ms => emqx_guard_steps:since(T0), size => Size, result => ok}}),
            {ok, Facts#{size => Size, sha256 => Sha, version => Version, edition => Edition}};
        {ok, Record = #{result := {error, Why}}} ->
            ok = emqx_guard_verifications:add([Record]),
            {error, {corrupt_backup, #{name => maps:get(name, Facts), why => Why}}};
        {error, Why} ->
            {error, {verify_unavailable, Why}}
    end.

read(Facts = #{path := Path}, _Opts) ->
    case contents(Path) of
        {ok, Contents} -> {ok, maps:merge(Facts, Contents)};
        {error, Why} -> {error, {unreadable_backup, #{name => maps:get(name, Facts), why => Why}}}
    end.

rules(Facts, _Opts) ->
    Release = emqx_guard_emqx:release(),
    Node =
        case Release of
            #{version := V, edition := E} -> #{name => node(), version => V, edition => atom_to_binary(E)};
            unknown -> #{name => node(), version => <<"unknown">>, edition => <<"unknown">>}
        end,
    Backup = maps:with([version, edition, security_profile], Facts),
    Checks = [
        fun() -> emqx_guard_restore_rules:check(Backup, Release) end,
        fun() -> emqx_guard_restore_rules:check_profile(Backup, Release, emqx_guard_emqx:security_profile()) end,
        fun() -> emqx_guard_restore_rules:check_cluster(Release, others()) end
    ],
    case lists:foldl(fun(Check, ok) -> Check(); (_, Refused) -> Refused end, ok, Checks) of
        ok -> {ok, Facts#{node => Node, notes => emqx_guard_restore_rules:notes(Backup, Release)}};
        {error, _} = Error -> Error
    end.

%% The EMQX release of every other running node that speaks version 2 and answers
%% (`emqx_guard_proto_v2'; a plugin of 0.2.0 answers `undef', left out).
others() ->
    Nodes = emqx_guard_proto:speaking(2, emqx_guard_proto:negotiate(emqx_guard_emqx:running_nodes() -- [node()])),
    Replies = emqx_guard_proto_v2:emqx_releases(Nodes, 5000),
    [{N, V} || {N, {ok, #{version := V}}} <- lists:zip(Nodes, Replies)].

%%--------------------------------------------------------------------------------------------
%% What the backup holds
%%--------------------------------------------------------------------------------------------

%% @doc What the export at Path holds: `config_keys' (the root keys of cluster.hocon, read from
%% its top-level lines), `tables' (`[#{name, rows}]', the records of each mnesia backup file,
%% `null' for a file that is no mnesia backup),
%% `api_keys' (the records of `emqx_app'), and META.hocon's `security_profile' when it has one.
%% The tarball is unpacked into a work directory of the plugin's (`data/emqx_guard/') and read
%% there: the disk needs room for it once more while this runs; it is removed after.
-spec contents(file:filename_all()) -> {ok, map()} | {error, term()}.
contents(Path) ->
    Work = filename:join(emqx_guard_store:dir(), "restore_preflight"),
    _ = file:del_dir_r(Work),
    try
        ok = filelib:ensure_dir(filename:join(Work, "x")),
        case erl_tar:extract(Path, [compressed, {cwd, Work}]) of
            ok ->
                Top = filename:join(Work, filename:basename(Path, ".tar.gz")),
                Meta = read_or_empty(filename:join(Top, "META.hocon")),
                Tables = [#{name => bin(T), rows => rows(filename:join([Top, "mnesia", T]))} ||
                    T <- lists:sort(list_dir(filename:join(Top, "mnesia")))],
                ApiKeys = lists:sum([R || #{name := <<"emqx_app">>, rows := R} <- Tables, is_integer(R)]),
                Profile = [{security_profile, P} || P <- [hocon_value(Meta, <<"security_profile">>)], P =/= undefined],
                {ok, maps:from_list(Profile ++ [
                    {config_keys, root_keys(read_or_empty(filename:join(Top, "cluster.hocon")))},
                    {tables, Tables},
                    {api_keys, ApiKeys}
                ])};
            {error, Why} ->
                {error, Why}
        end
    catch
        Class:Reason -> {error, {Class, Reason}}
    after
        _ = file:del_dir_r(Work)
    end.

read_or_empty(File) ->
    case file:read_file(File) of
        {ok, Bin} -> Bin;
        {error, _} -> <<>>
    end.

list_dir(Dir) ->
    case file:list_dir(Dir) of
        {ok, Names} -> [N || N <- Names, filelib:is_regular(filename:join(Dir, N))];
        {error, _} -> []
    end.

%% The root keys of a hocon file as EMQX's export writes it (`hocon_pp': one root key a line at
%% the start of the line, nested keys indented).
root_keys(Hocon) ->
    Lines = binary:split(Hocon, [<<"\n">>, <<"\r\n">>], [global]),
    lists:usort([K || L <- Lines,
        {match, [K]} <- [re:run(L, "^\"?([A-Za-z_][A-Za-z0-9_.-]*)\"?\\s*[=:{]", [{capture, all_but_first, binary}])]]).

hocon_value(Hocon, Key) ->
    case re:run(Hocon, ["^", Key, "\\s*[=:]\\s*\"?([^\"\\n]*)\"?\\s*$"], [multiline, {capture, all_but_first, binary}]) of
        {match, [V]} -> V;
        nomatch -> undefined
    end.

%% The records in a mnesia backup file (a disk_log of mnesia's backup items): every item but the
%% log header and the schema; `null' for a file that is no such log (EMQX's import would report
%% that table's error: the preflight shows it without a count).
rows(File) ->
    case disk_log:open([{name, make_ref()}, {file, unicode:characters_to_list(File)}, {mode, read_only}, {repair, false}]) of
        {ok, Log} ->
            try
                count(Log, start, 0)
            catch
                error:{table_unreadable, _} -> null
            after
                _ = disk_log:close(Log)
            end;
        _ ->
            null
    end.

count(Log, Cont, N) ->
    case disk_log:chunk(Log, Cont) of
        eof -> N;
        {error, Why} -> error({table_unreadable, Why});
        {Cont1, Items} -> count(Log, Cont1, N + records(Items));
        {Cont1, Items, _Bad} -> count(Log, Cont1, N + records(Items))
    end.

records(Items) ->
    length([I || I <- Items, is_tuple(I), tuple_size(I) >= 2, element(1, I) =/= log_header, element(1, I) =/= schema]).

bin(Text) ->
    unicode:characters_to_binary(Text).
