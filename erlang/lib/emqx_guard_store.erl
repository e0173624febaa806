%% @doc The plugin's files under EMQX's data directory: `<data_dir>/emqx_guard/NAME', each
%% holding one Erlang term.
%%
%% Reading only parses (`file:consult/1'), never evaluates. Writing goes to a temporary file in
%% the same directory (mode 0600 before any byte is written: the settings hold secrets), synced,
%% then renamed over the file, so a reader sees the old term or the new one, never a part. What
%% a file should hold, and what to do with a damaged one, is its owner's business.
-module(emqx_guard_store).

-export([dir/0, path/1, read/1, write/2]).

-export_type([error/0]).

%% Why a file could not be written (`emqx_guard_outcome:format_error/1' says it).
-type error() :: {cannot_write, #{path := binary(), posix := term()}}.

%% @doc `<data_dir>/emqx_guard'.
-spec dir() -> file:filename().
dir() ->
    filename:join(emqx_guard_emqx:data_dir(), "emqx_guard").

%% @doc The path of the plugin's file Name.
-spec path(string()) -> file:filename().
path(Name) ->
    filename:join(dir(), Name).

%% @doc The one term in the file at Path: `{error, enoent}' when there is none,
%% `{error, {expected_one_term, N}}' or a `file:consult/1' error when it is damaged.
-spec read(file:filename_all()) -> {ok, term()} | {error, term()}.
read(Path) ->
    case file:consult(Path) of
        {ok, [Term]} -> {ok, Term};
        {ok, Terms} -> {error, {expected_one_term, length(Terms)}};
        {error, _} = Error -> Error
    end.

%% @doc Writes Term to Path atomically; `{error, {cannot_write, #{path, posix}}}' says what failed.
-spec write(file:filename_all(), term()) -> ok | {error, error()}.
write(Path, Term) ->
    Tmp = filename:join(filename:dirname(Path), [
        ".", filename:basename(Path), ".tmp.", os:getpid(), ".", integer_to_list(erlang:unique_integer([positive]))
    ]),
    Content = unicode:characters_to_binary(
        io_lib:format("%% -*- coding: utf-8 -*-~n%% Written by emqx_guard; edit with `emqx ctl guard`.~n~tp.~n", [Term])
    ),
    Written =
        case filelib:ensure_dir(Path) of
            ok -> write_synced(Tmp, Content);
            {error, _} = E -> E
        end,
    Result =
        case Written of
            ok -> file:rename(Tmp, Path);
            {error, _} = E2 -> E2
        end,
    case Result of
        ok ->
            ok;
        {error, Reason} ->
            _ = file:delete(Tmp),
            {error, {cannot_write, #{path => unicode:characters_to_binary(Path), posix => Reason}}}
    end.

write_synced(Tmp, Content) ->
    case file:open(Tmp, [write, raw, binary]) of
        {ok, Fd} ->
            _ = file:change_mode(Tmp, 8#600),
            Result =
                case file:write(Fd, Content) of
                    ok -> file:sync(Fd);
                    {error, _} = E -> E
                end,
            _ = file:close(Fd),
            Result;
        {error, _} = E ->
            E
    end.
