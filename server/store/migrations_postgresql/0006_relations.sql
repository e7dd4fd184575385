-- What each parent is to each child (« mère », « père »…), when the directory says:
-- {child id: relation code}; a child absent from it has the default, « responsable »
-- (guardian). Issue 11: parents listed as « mère de Léa André (6e A) ».
ALTER TABLE users ADD COLUMN relations jsonb NOT NULL DEFAULT '{}';
