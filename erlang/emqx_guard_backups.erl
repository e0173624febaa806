%% @doc The backups on this node's disk (`<data_dir>/backup'): listing, making a new one
%% private, removing what a failed export left behind, and retention.
%%
%% Only files with EMQX export names (`emqx_guard_core:is_export_name/1', the rule kept in Rust)
%% are ever touched; files uploaded through EMQX's API under other names, symlinks and
%% subdirectories (EMQX 6.1+ keeps namespaced backups in `ns/') are left alone.
-module(emqx_guard_backups).

-include_lib("kernel/include/file.hrl").
-include_lib("kernel/include/logger.hrl").

-export([names/0, list/1, make_private/1, snapshot/1, remove_partial/3, prune/3, plan/2]).

-export_type([listed/0, snapshot/0, pruned/0]).

-type listed() :: #{
    name := binary(),
    path := binary(),
    size := non_neg_integer(),
    mtime := integer(),
    verified := ok | {error, binary()}
}.
%% The export-named entries of the directory before an export, or `unknown'.
-opaque snapshot() :: {ok, [string()]} | unknown.
-type pruned() :: #{
    pruned := [binary()],
    prune_failed := [{binary(), binary()}],
    prune_skipped := [{binary(), binary()}]
}.

%% @doc The names of the exports in this node's backup directory, newest first (no check of
%% their content): what `guard backup_status' shows per node and what the catch-up compares.
-spec names() -> [binary()] | {error, binary()}.
names() ->
    Dir = emqx_guard_emqx:backup_dir(),
    case file:list_dir(Dir) of
        {ok, Names} -> lists:reverse(lists:sort([bin(N) || N <- Names, emqx_guard_core:is_export_name(N)]));
        {error, enoent} -> [];
        {error, Posix} -> {error, text("cannot list ~ts: ~ts", [Dir, file:format_error(Posix)])}
    end.

%% @doc The exports in Dir, newest first, each verified. A directory that does not exist (no
%% export has run yet) has none.
-spec list(file:filename_all()) -> {ok, [listed()]} | {error, binary()}.
list(Dir) ->
    case unless_missing(Dir, fun() -> emqx_guard_core:list_backups(Dir) end, []) of
        {ok, Backups} ->
            {ok, [B#{verified => verified(Path)} || #{path := Path} = B <- Backups]};
        {error, {_, Detail}} ->
            {error, Detail}
    end.

verified(Path) ->
    case emqx_guard_core:verify(Path) of
        {ok, _} -> ok;
        {error, {_, Detail}} -> {error, Detail}
    end.

%% @doc Makes a new backup readable by EMQX's user only (mode 0600): backups hold password hashes
%% and API keys. `{error, Line}' when the mode could not be set.
-spec make_private(binary()) -> ok | {error, binary()}.
make_private(Path) ->
    case file:change_mode(Path, 8#600) of
        ok ->
            ok;
        {error, Posix} ->
            Name = filename:basename(Path),
            ?LOG_WARNING(#{msg => emqx_guard_backup_mode_not_set, file => Name, reason => Posix}),
            {error, text("could not make ~ts private (mode 0600): ~ts", [Name, file:format_error(Posix)])}
    end.

%% @doc What is in Dir before an export starts, for `remove_partial/3'.
-spec snapshot(file:filename_all()) -> snapshot().
snapshot(Dir) ->
    case file:list_dir(Dir) of
        {ok, Names} -> {ok, [N || N <- Names, is_export_entry(N)]};
        {error, enoent} -> {ok, []};
        {error, _} -> unknown
    end.

%% @doc After a failed export: removes what appeared in Dir since the snapshot and is named from
%% Since (Unix ms) on, in the node's local time as EMQX names its exports: export-named regular
%% files and EMQX's export-named staging directories. Names present before, an export someone
%% else started earlier, symlinks and anything else are left alone. Returns what it removed.
-spec remove_partial(file:filename_all(), snapshot(), integer()) -> [binary()].
remove_partial(_Dir, unknown, _Since) ->
    [];
remove_partial(Dir, {ok, Before}, Since) ->
    case snapshot(Dir) of
        {ok, After} ->
            From = local_stamp(Since),
            Ours = [N || N <- After -- Before, name_stamp(N) >= From],
            lists:sort(lists:filtermap(fun(Name) -> remove_entry(Dir, Name) end, Ours));
        unknown ->
            []
    end.

%% An export file, or the staging directory EMQX fills while exporting (the same name without
%% `.tar.gz').
is_export_entry(Name) ->
    case lists:suffix(".tar.gz", Name) of
        true -> emqx_guard_core:is_export_name(Name);
        false -> emqx_guard_core:is_export_name(Name ++ ".tar.gz")
    end.

%% `YYYY-MM-DD-HH-MM-SS.mmm' of an export name (fixed width, so these compare in time order).
name_stamp("emqx-export-" ++ Rest) ->
    lists:sublist(Rest, 23).

local_stamp(Ms) ->
    {{Y, Mo, D}, {H, Mi, S}} = calendar:system_time_to_local_time(Ms div 1000, second),
    lists:flatten(
        io_lib:format("~4..0b-~2..0b-~2..0b-~2..0b-~2..0b-~2..0b.~3..0b", [Y, Mo, D, H, Mi, S, Ms rem 1000])
    ).

remove_entry(Dir, Name) ->
    Path = filename:join(Dir, Name),
    IsTar = lists:suffix(".tar.gz", Name),
    Result =
        case file:read_link_info(Path) of
            {ok, #file_info{type = regular}} when IsTar -> file:delete(Path);
            {ok, #file_info{type = directory}} when not IsTar -> file:del_dir_r(Path);
            _ -> skip
        end,
    case Result of
        ok ->
            ?LOG_INFO(#{msg => emqx_guard_backup_partial_removed, file => bin(Name)}),
            {true, bin(Name)};
        skip ->
            false;
        {error, Posix} ->
            ?LOG_WARNING(#{msg => emqx_guard_backup_partial_not_removed, file => bin(Name), reason => Posix}),
            false
    end.

%% @doc Retention: keeps the newest Keep exports in Dir that verify, never Protect (the new
%% backup, counted as one of them), and deletes every export older than the oldest kept one.
%% Newer exports that do not verify are neither counted nor deleted (`prune_skipped'). Failed
%% deletes and skipped files are logged. `{error, Line}' when the directory cannot be pruned.
-spec prune(file:filename_all(), pos_integer(), binary() | undefined) -> {ok, pruned()} | {error, binary()}.
prune(Dir, Keep, Protect) ->
    case emqx_guard_core:prune(Dir, Keep, Protect, false) of
        {ok, #{deleted := Deleted, failed := Failed, skipped_unverified := Skipped}} ->
            FailedPairs = [{N, E} || #{name := N, error := E} <- Failed],
            SkippedPairs = [{N, E} || #{name := N, error := E} <- Skipped],
            lists:foreach(fun(#{name := N}) -> ?LOG_INFO(#{msg => emqx_guard_backup_pruned, file => N}) end, Deleted),
            lists:foreach(
                fun({N, E}) -> ?LOG_WARNING(#{msg => emqx_guard_backup_prune_failed, file => N, error => E}) end,
                FailedPairs
            ),
            lists:foreach(
                fun({N, E}) -> ?LOG_WARNING(#{msg => emqx_guard_backup_unverified_kept, file => N, error => E}) end,
                SkippedPairs
            ),
            {ok, #{pruned => [N || #{name := N} <- Deleted], prune_failed => FailedPairs, prune_skipped => SkippedPairs}};
        {error, {_Reason, Detail}} ->
            ?LOG_WARNING(#{msg => emqx_guard_backup_prune_failed, dir => bin(Dir), error => Detail}),
            {error, Detail}
    end.

%% @doc Retention's plan for Dir now (nothing is deleted): `delete', the exports it would delete,
%% and `skipped_unverified', the newer exports that do not verify (neither counted toward Keep nor
%% deleted), each with the verifier's `error' line; both oldest first.
-spec plan(file:filename_all(), pos_integer()) ->
    {ok, #{delete := [emqx_guard_nif:backup()], skipped_unverified := [emqx_guard_nif:failed_backup()]}}
    | {error, binary()}.
plan(Dir, Keep) ->
    Nothing = #{deleted => [], skipped_unverified => []},
    case unless_missing(Dir, fun() -> emqx_guard_core:prune(Dir, Keep, undefined, true) end, Nothing) of
        {ok, #{deleted := Would, skipped_unverified := Skipped}} ->
            {ok, #{delete => Would, skipped_unverified => Skipped}};
        {error, {_, Detail}} ->
            {error, Detail}
    end.

%% A backup directory that does not exist yet (no export ran) holds nothing.
unless_missing(Dir, Call, Empty) ->
    case file:read_file_info(Dir) of
        {error, enoent} -> {ok, Empty};
        _ -> Call()
    end.

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).

bin(B) when is_binary(B) -> B;
bin(L) -> unicode:characters_to_binary(L).
