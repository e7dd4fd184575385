// How a person is named in lists: a parent with their children, as a school says it —
// « Claire André, mère de Léa André (6e A) ». The server gives the structure (each
// child with the relation's code and class, docs/protocol.md §8.1); the words are
// here, in French and English.

import { register, t } from './i18n.js';

register({
  fr: {
    'relation.mother': 'mère',
    'relation.father': 'père',
    'relation.stepmother': 'belle-mère',
    'relation.stepfather': 'beau-père',
    'relation.grandmother': 'grand-mère',
    'relation.grandfather': 'grand-père',
    'relation.legal_guardian': 'responsable légal',
    'relation.guardian': 'responsable',
    'relation.of': '{relation} de {child}',
    'relation.child': '{name} ({class})',
    'relation.and': '{first} et de {last}',
    'relation.label': '{name}, {detail}',
  },
  en: {
    'relation.mother': 'mother',
    'relation.father': 'father',
    'relation.stepmother': 'stepmother',
    'relation.stepfather': 'stepfather',
    'relation.grandmother': 'grandmother',
    'relation.grandfather': 'grandfather',
    'relation.legal_guardian': 'legal guardian',
    'relation.guardian': 'guardian',
    'relation.of': '{relation} of {child}',
    'relation.child': '{name} ({class})',
    'relation.and': '{first} and of {last}',
    'relation.label': '{name}, {detail}',
  },
});

const RELATIONS = new Set(['mother', 'father', 'stepmother', 'stepfather', 'grandmother',
  'grandfather', 'legal_guardian', 'guardian']);

function child(c) {
  const name = c.name || c.id;
  return c.class && c.class.name ? t('relation.child', { name, class: c.class.name }) : name;
}

/**
 * « mère de Léa André (6e A) » for a parent with children; '' for anyone else.
 * Children with the same relation are joined: « mère de Léa André (6e A) et de Tom André (4e B) ».
 */
export function parentDetail(person) {
  if (!person || person.role !== 'parent' || !Array.isArray(person.children) || !person.children.length) return '';
  const byRelation = new Map();
  for (const c of person.children) {
    // An unknown code (a newer server) reads as the default, « responsable ».
    const relation = RELATIONS.has(c.relation) ? c.relation : 'guardian';
    if (!byRelation.has(relation)) byRelation.set(relation, []);
    byRelation.get(relation).push(child(c));
  }
  return [...byRelation].map(([relation, names]) => t('relation.of', {
    relation: t(`relation.${relation}`),
    child: names.reduce((first, last) => t('relation.and', { first, last })),
  })).join(', ');
}

/** « Claire André, mère de Léa André (6e A) » for a parent; the name alone for others. */
export function personLabel(person, fallbackId) {
  const name = (person && person.name) || (person && person.id) || fallbackId || '';
  const detail = parentDetail(person);
  return detail ? t('relation.label', { name, detail }) : name;
}
