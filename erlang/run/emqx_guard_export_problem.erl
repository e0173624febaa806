%% @doc The problem a failed export's reason names, however deep EMQX nested it: the disk error
%% (mnesia's `{file_error, Path, Posix}' inside `{'EXIT', ...}', erl_tar's `{Name, Posix}' or the
%% line `"Name: no space left on device"' it is formatted to, a bare POSIX atom from a badmatch)
%% or a call inside EMQX that timed out. `emqx_guard_run' turns what `find/1' finds into a reason
%% `emqx_guard_outcome:format_error/1' says in words (`export_disk_error', `export_call_timeout').
%% The search is bounded in depth and never raises.
-module(emqx_guard_export_problem).

-export([find/1]).

%% The POSIX reasons a disk gives that `find/1' looks for inside EMQX's terms.
-define(DISK_POSIX, [enospc, edquot, eacces, eperm, erofs, eio, enoent, enotdir, emfile, enfile, efbig, enametoolong]).
%% How deep `find/1' looks into a term.
-define(MAX_DEPTH, 40).

%% @doc What a failed export's reason says about the disk, however deep EMQX nested it (mnesia's
%% `{file_error, Path, Posix}' inside `{'EXIT', ...}', erl_tar's `{Name, Posix}' or the line
%% `"Name: no space left on device"' it is formatted to, a bare POSIX atom from a badmatch):
%% `{file, Posix, Path | undefined}' for the first such error; else a call that timed out inside
%% EMQX (`{timeout, {gen_server, call, _}}' and the like): `{timeout, {Module, Function}}', or
%% `{timeout, undefined}' for a bare `timeout'; else `none'. Only the POSIX reasons a disk gives
%% count (`enospc', `edquot', `eacces', `eperm', `erofs', `eio', `enoent', `enotdir', `emfile',
%% `enfile', `efbig', `enametoolong').
-spec find(term()) ->
    {file, atom(), binary() | undefined} | {timeout, {atom(), atom()} | undefined} | none.
find(Reason) ->
    case find_file_error(Reason, 0) of
        none -> find_timeout(Reason, 0);
        Found -> Found
    end.

find_file_error(_Term, Depth) when Depth > ?MAX_DEPTH ->
    none;
find_file_error({file_error, Path, Posix}, _Depth) when is_atom(Posix) ->
    {file, Posix, path_text(Path)};
find_file_error(Posix, _Depth) when is_atom(Posix) ->
    case lists:member(Posix, ?DISK_POSIX) of
        true -> {file, Posix, undefined};
        false -> none
    end;
find_file_error(Term, Depth) when is_binary(Term); is_list(Term) ->
    case emqx_guard_render:printable(Term) of
        {true, Line} -> posix_line(Line);
        false when is_list(Term) -> first_file_error(Term, Depth + 1);
        false -> none
    end;
find_file_error({Path, Posix}, Depth) when is_atom(Posix) ->
    case {lists:member(Posix, ?DISK_POSIX), emqx_guard_render:printable(Path)} of
        {true, {true, Text}} -> {file, Posix, unicode:characters_to_binary(Text)};
        _ -> first_file_error([Path, Posix], Depth + 1)
    end;
find_file_error(Tuple, Depth) when is_tuple(Tuple) ->
    first_file_error(tuple_to_list(Tuple), Depth + 1);
find_file_error(Map, Depth) when is_map(Map) ->
    first_file_error(maps:values(Map), Depth + 1);
find_file_error(_Term, _Depth) ->
    none.

first_file_error([Term | Rest], Depth) ->
    case find_file_error(Term, Depth) of
        none -> first_file_error(Rest, Depth);
        Found -> Found
    end;
first_file_error(_NilOrImproperTail, _Depth) ->
    none.

%% erl_tar's formatted errors: "Name: <the POSIX reason in words>".
posix_line(Line) ->
    Flat = unicode:characters_to_list(Line),
    Match = [
        {Posix, lists:sublist(Flat, length(Flat) - length(Words))}
     || Posix <- ?DISK_POSIX,
        Words <- [file:format_error(Posix)],
        lists:suffix(Words, Flat)
    ],
    case Match of
        [{Posix, Before} | _] ->
            Path =
                case string:split(Before, ": ", trailing) of
                    [P, ""] when P =/= "" -> unicode:characters_to_binary(P);
                    _ -> undefined
                end,
            {file, Posix, Path};
        [] ->
            none
    end.

path_text(Path) ->
    case emqx_guard_render:printable(Path) of
        {true, Text} -> unicode:characters_to_binary(Text);
        false -> undefined
    end.

find_timeout(_Term, Depth) when Depth > ?MAX_DEPTH ->
    none;
find_timeout(timeout, _Depth) ->
    {timeout, undefined};
find_timeout({timeout, {M, F, _Args}}, _Depth) when is_atom(M), is_atom(F) ->
    {timeout, {M, F}};
find_timeout(Tuple, Depth) when is_tuple(Tuple) ->
    first_timeout(tuple_to_list(Tuple), Depth + 1);
find_timeout(List, Depth) when is_list(List) ->
    case emqx_guard_render:printable(List) of
        {true, _} -> none;
        false -> first_timeout(List, Depth + 1)
    end;
find_timeout(Map, Depth) when is_map(Map) ->
    first_timeout(maps:values(Map), Depth + 1);
find_timeout(_Term, _Depth) ->
    none.

first_timeout([Term | Rest], Depth) ->
    case find_timeout(Term, Depth) of
        none -> first_timeout(Rest, Depth);
        Found -> Found
    end;
first_timeout(_NilOrImproperTail, _Depth) ->
    none.
